package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/cmd/config/field"
)

func TestAddAllPrefixesPaths(t *testing.T) {
	var sub Problems
	sub.Add("issuer", "bad")
	sub.Add("", "whole entry")
	var p Problems
	p.AddAll("upstreams[1]", errors.Join(sub.Err(), errors.New("plain")))
	var got []string
	for _, e := range Split(p.Err()) {
		got = append(got, e.Error())
	}
	want := "upstreams[1].issuer: bad|upstreams[1]: whole entry|upstreams[1]: plain"
	if strings.Join(got, "|") != want {
		t.Errorf("AddAll() = %q, want %q", strings.Join(got, "|"), want)
	}
	var none Problems
	none.AddAll("x", nil)
	if none.Err() != nil {
		t.Errorf("AddAll(nil) added %v", none.Err())
	}
}

// A section inline at the top of the file (verify.yaml's verify.Config)
// keeps its paths; its *field.Error problems are FieldErrors as they are.
func TestAddAllTopLevel(t *testing.T) {
	var p Problems
	p.AddAll("", errors.Join(&field.Error{Path: "revocationFeed.url", Msg: "bad"}, errors.New("plain")))
	var got []string
	for _, e := range Split(p.Err()) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Errorf("%v is not a *FieldError", e)
		}
		got = append(got, e.Error())
	}
	if want := "revocationFeed.url: bad|: plain"; strings.Join(got, "|") != want {
		t.Errorf("AddAll(\"\") = %q, want %q", strings.Join(got, "|"), want)
	}
}

// A bad duration is a *yaml.TypeError, so the decoder reports it with the
// other problems of the file instead of stopping.
func TestDurationKeepsDecoding(t *testing.T) {
	var v struct {
		A Duration   `yaml:"a"`
		B Duration   `yaml:"b"`
		C int        `yaml:"c"`
		L StringList `yaml:"l"`
	}
	err := yaml.Unmarshal([]byte("a: soon\nb: 90s\nc: x\nl: one\n"), &v)
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) != 2 || !strings.Contains(te.Errors[0], `"soon" is not a duration`) {
		t.Fatalf("Unmarshal() = %v, want two type errors, the first a bad duration", err)
	}
	if v.B != Duration(90*time.Second) || len(v.L) != 1 || v.L[0] != "one" {
		t.Errorf("decoded %+v, want b 90s and l [one] despite the errors", v)
	}
	if s := Duration(90 * time.Minute).String(); s != "1h30m" {
		t.Errorf("String() = %q, want 1h30m", s)
	}
}
