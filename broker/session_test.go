package broker

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fill sets every field reachable from v to a non-zero value: pointers are
// allocated, slices get two elements, maps two entries, and claim values
// (any) a nested JSON-shaped value. It is deterministic, so two fills are
// equal.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s is unexported: extend fill and mutate to reach it", v.Type(), f.Name)
			}
			fill(t, v.Field(i))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for _, key := range []string{"k1", "k2"} {
			k := reflect.New(v.Type().Key()).Elem()
			k.SetString(key) // every map in a Session is keyed by a string kind
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, e)
			v.SetMapIndex(k, e)
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(map[string]any{
			"str":    "v",
			"num":    float64(1),
			"list":   []any{"a", map[string]any{"deep": "x"}, []any{"y"}},
			"groups": []string{"g1", "g2"},
			"obj":    map[string]any{"nested": map[string]any{"z": "w"}},
			"labels": map[string]string{"a": "b"},
		}))
	default:
		t.Fatalf("fill: kind %s (%s) not handled: extend fill and mutate", v.Kind(), v.Type())
	}
}

// mutate changes every value reachable from v in place, through pointers,
// slices, maps and interfaces, and adds an entry to every map: whatever a
// clone shares with its original shows up as a change in the original.
func mutate(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Hour)))
			return
		}
		for i := range v.NumField() {
			mutate(v.Field(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			mutate(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			mutate(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			mutate(e)
			v.SetMapIndex(k, e)
		}
		k := reflect.New(v.Type().Key()).Elem()
		k.SetString("added")
		v.SetMapIndex(k, reflect.Zero(v.Type().Elem()))
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		// The dynamic value is not addressable: change a copy and store it
		// back (maps and slices are changed in place by mutate too).
		e := reflect.New(v.Elem().Type()).Elem()
		e.Set(v.Elem())
		mutate(e)
		v.Set(e)
	}
}

func filledSession(t *testing.T) *Session {
	t.Helper()
	var s Session
	fill(t, reflect.ValueOf(&s).Elem())
	return &s
}

// TestSessionCloneIsDeep fills every field of a Session (found by
// reflection, so a field added later is covered), clones it, changes every
// value reachable from the clone, and checks that the original did not
// change.
func TestSessionCloneIsDeep(t *testing.T) {
	orig := filledSession(t)
	clone, ok := orig.Clone().(*Session)
	if !ok {
		t.Fatalf("Clone() = %T, want *Session", orig.Clone())
	}
	if diff := cmp.Diff(orig, clone); diff != "" {
		t.Fatalf("Clone() differs from the original (-orig +clone):\n%s", diff)
	}
	mutate(reflect.ValueOf(clone).Elem())
	if diff := cmp.Diff(filledSession(t), orig); diff != "" {
		t.Errorf("changing the clone changed the original (-want +got):\n%s", diff)
	}
	// And the other way round: the clone does not see changes to the
	// original.
	clone2 := orig.Clone().(*Session)
	mutate(reflect.ValueOf(orig).Elem())
	if diff := cmp.Diff(filledSession(t), clone2); diff != "" {
		t.Errorf("changing the original changed the clone (-want +got):\n%s", diff)
	}
}

func TestSessionCloneKeepsNil(t *testing.T) {
	if got := (*Session)(nil).Clone(); got != nil {
		t.Errorf("nil.Clone() = %#v, want nil", got)
	}
	var empty Session
	if diff := cmp.Diff(&empty, empty.Clone()); diff != "" {
		t.Errorf("Clone() of an empty session (-want +got):\n%s", diff)
	}
	fresh := newSession()
	if diff := cmp.Diff(fresh, fresh.Clone()); diff != "" {
		t.Errorf("Clone() of newSession() (-want +got):\n%s", diff)
	}
}
