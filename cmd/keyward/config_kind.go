package main

// This file tells the two kinds of configuration file apart, so that
// check-config given a verify.yaml (or verify --check given a keyward.yaml)
// names the right command instead of listing every field as unknown.

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// configKind is one kind of configuration file.
type configKind struct {
	// what names the kind in messages.
	what string
	// example is the commented example of every field.
	example string
	// markers are top-level keys only this kind has; a file with one of the
	// other kind's markers and none of its own is of the other kind.
	markers []string
	// check is the command that checks a file of this kind, with %s for
	// its path.
	check string
}

var (
	kindBroker = configKind{
		what: "the broker's configuration (keyward.yaml)", example: "examples/keyward.yaml",
		markers: []string{"upstreams", "clients"}, check: "keyward check-config -c %s",
	}
	kindVerify = configKind{
		what: "the verifier's configuration (verify.yaml)", example: "examples/verify.yaml",
		markers: []string{"audience", "rules"}, check: "keyward verify --check -c %s",
	}
)

func (k configKind) other() configKind {
	if k.example == kindBroker.example {
		return kindVerify
	}
	return kindBroker
}

// wrongKindError says that a file is of the other kind and how to check it.
type wrongKindError struct {
	want, got configKind
	has       []string // the other kind's markers the file has
	file      string   // set by withFile; empty: "FILE"
}

func (e *wrongKindError) Error() string {
	file := e.file
	if file == "" {
		file = "FILE"
	}
	return fmt.Sprintf("this is %s, not %s: it has %s and no %s; check it with: %s",
		e.got.what, e.want.what, strings.Join(e.has, " and "), strings.Join(e.want.markers, " or "),
		fmt.Sprintf(e.got.check, file))
}

// checkKind returns a *wrongKindError when data's top-level keys say it is
// a file of the other kind. It leaves syntax errors to the decoder.
func checkKind(data []byte, want configKind) error {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	top := doc.Content[0]
	var keys []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		keys = append(keys, top.Content[i].Value)
	}
	if slices.ContainsFunc(want.markers, func(m string) bool { return slices.Contains(keys, m) }) {
		return nil
	}
	got := want.other()
	var has []string
	for _, m := range got.markers {
		if slices.Contains(keys, m) {
			has = append(has, m)
		}
	}
	if len(has) == 0 {
		return nil
	}
	return &wrongKindError{want: want, got: got, has: has}
}

// withFile names file in err's *wrongKindError, if it has one.
func withFile(err error, file string) error {
	for _, e := range splitErrors(err) {
		if wk, ok := e.(*wrongKindError); ok { //nolint:errorlint // A leaf of the join tree.
			wk.file = file
		}
	}
	return err
}
