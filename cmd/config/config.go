package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/cmd/config/field"
)

// Duration is a time.Duration written as a Go duration: "90s", "15m", "24h".
type Duration time.Duration

// String formats d without zero units: "2h", "1h30m", "5m", "1m30s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalYAML parses a Go duration; a bare number other than 0 is refused
// (no unit). A bad value is a *yaml.TypeError, so the decoder goes on and
// reports every other problem too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: want a duration such as 90s, 15m or 24h", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: %q is not a duration; write one such as 90s, 15m or 24h", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a Go duration.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// StringList is a list of strings that YAML may also give as one string.
type StringList []string

// UnmarshalYAML accepts a scalar (one element) or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*l = list
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a string or a list of strings", n.Line)}}
}

// FieldError is one configuration problem: the YAML field path and what to
// do about it. It is field.Error, the one problem type that web/verify's
// Validate methods report too, so their problems need no conversion.
type FieldError = field.Error

// Problems collects configuration problems, one *FieldError each.
type Problems []error

// Add records a problem at path; the message is format with args.
func (p *Problems) Add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// AddAll records the problems of a section's Validate under prefix: its
// *FieldError paths become prefix.path (prefix[0].path for a list item; the
// path itself for prefix "", a section inline at the top of the file);
// other errors are recorded as they are, at prefix.
func (p *Problems) AddAll(prefix string, err error) {
	for _, e := range Split(err) {
		var fe *FieldError
		switch {
		case errors.As(e, &fe) && prefix == "":
			p.Add(fe.Path, "%s", fe.Msg)
		case errors.As(e, &fe) && fe.Path == "":
			p.Add(prefix, "%s", fe.Msg)
		case errors.As(e, &fe):
			p.Add(prefix+"."+fe.Path, "%s", fe.Msg)
		default:
			p.Add(prefix, "%s", e.Error())
		}
	}
}

// Err joins the problems; nil when there are none.
func (p Problems) Err() error { return errors.Join(p...) }

// Split flattens errors.Join trees into their leaves.
func Split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // Walking the join tree itself.
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Split(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
