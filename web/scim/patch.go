package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	filter "github.com/scim2/filter-parser/v2"
)

// applyPatch applies PATCH operations (RFC 7644 §3.5.2), as the library
// validated them, to a resource's attributes, in order. The library parses
// and checks each path against the schema; what a path selects inside the
// resource, and what add, replace and remove do there, is this file's.
func applyPatch(attrs map[string]any, ops []scim.PatchOperation) error {
	for _, op := range ops {
		if err := applyOp(attrs, op); err != nil {
			return err
		}
	}
	return nil
}

func patchError(scimType scimerrors.ScimType, format string, args ...any) error {
	return scimerrors.ScimError{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

func applyOp(attrs map[string]any, op scim.PatchOperation) error {
	if op.Path == nil {
		// No path: the value is a set of attributes (RFC 7644 §3.5.2.1,
		// §3.5.2.3); Okta and Entra send {"active": false} this way.
		m, ok := op.Value.(map[string]any)
		if !ok || op.Op == scim.PatchOperationRemove {
			return patchError(scimerrors.ScimTypeNoTarget, "an operation without a path needs an object of attributes as its value")
		}
		for k, v := range m {
			if !strings.HasPrefix(strings.ToLower(k), "urn:") {
				setValue(attrs, k, v, op.Op)
				continue
			}
			// An extension: {"urn:…:User": {"department": …}}, or one of its
			// attributes by its full name, {"urn:…:User:department": …}
			// (Entra ID).
			uri := k
			sub, isObject := v.(map[string]any)
			if !isObject {
				i := strings.LastIndex(k, ":")
				uri, sub = k[:i], map[string]any{k[i+1:]: v}
			}
			ext, _ := lookup(attrs, uri).(map[string]any)
			if ext == nil {
				ext = map[string]any{}
			}
			for sk, sv := range sub {
				setValue(ext, sk, sv, op.Op)
			}
			attrs[key(attrs, uri)] = ext
		}
		return nil
	}
	p := op.Path
	c := container(attrs, p.AttributePath)
	name := key(c, p.AttributePath.AttributeName)
	if p.ValueExpression == nil {
		if sub := p.AttributePath.SubAttributeName(); sub != "" {
			nested, _ := c[name].(map[string]any)
			if nested == nil {
				if op.Op == scim.PatchOperationRemove {
					return nil
				}
				nested = map[string]any{}
			}
			setValue(nested, sub, op.Value, op.Op)
			c[name] = nested
			return nil
		}
		setValue(c, name, op.Value, op.Op)
		return nil
	}
	// A value filter selects elements of a multi-valued attribute:
	// emails[type eq "work"].value, members[value eq "…"].
	list, _ := c[name].([]any)
	elemSub := p.SubAttributeName()
	matched := false
	out := list[:0:0]
	for _, el := range list {
		m, _ := el.(map[string]any)
		if m == nil || !matches(m, p.ValueExpression) {
			out = append(out, el)
			continue
		}
		matched = true
		switch {
		case op.Op == scim.PatchOperationRemove && elemSub == "":
			continue // the element goes
		case op.Op == scim.PatchOperationRemove:
			delete(m, key(m, elemSub))
		case elemSub != "":
			m[key(m, elemSub)] = op.Value
		default:
			v, ok := op.Value.(map[string]any)
			if !ok {
				return patchError(scimerrors.ScimTypeInvalidValue, "%s needs an object as its value", p)
			}
			for k, x := range v {
				m[key(m, k)] = x
			}
		}
		out = append(out, m)
	}
	if !matched && op.Op != scim.PatchOperationRemove {
		// Nothing matched: add the element the filter describes, with the
		// value (Entra ID replaces emails[type eq "work"].value on a user
		// who has no work address yet).
		el := elementOf(p.ValueExpression)
		if el == nil {
			return patchError(scimerrors.ScimTypeNoTarget, "%s matches no value", p)
		}
		if elemSub != "" {
			el[elemSub] = op.Value
		} else if v, ok := op.Value.(map[string]any); ok {
			for k, x := range v {
				el[k] = x
			}
		}
		out = append(out, el)
	}
	c[name] = out
	return nil
}

// setValue applies op to the attribute name of m: remove deletes it,
// replace sets it, add sets it or, on a multi-valued attribute, appends the
// values it does not hold yet.
func setValue(m map[string]any, name string, v any, op string) {
	k := key(m, name)
	switch op {
	case scim.PatchOperationRemove:
		delete(m, k)
	case scim.PatchOperationAdd:
		old, isList := m[k].([]any)
		add, addList := v.([]any)
		if !isList || !addList {
			m[k] = v
			return
		}
		for _, a := range add {
			if !containsValue(old, a) {
				old = append(old, a)
			}
		}
		m[k] = old
	default:
		m[k] = v
	}
}

// containsValue: a multi-valued attribute holds x already (the same
// "value" sub-attribute for complex values, as members and emails have).
func containsValue(list []any, x any) bool {
	xv := fmt.Sprint(valueOf(x))
	for _, el := range list {
		if fmt.Sprint(valueOf(el)) == xv {
			return true
		}
	}
	return false
}

func valueOf(x any) any {
	if m, ok := x.(map[string]any); ok {
		return lookup(m, "value")
	}
	return x
}

// container is the map an attribute path's attribute lives in: the
// resource, or an extension's object (created when missing).
func container(attrs map[string]any, ap filter.AttributePath) map[string]any {
	uri := ap.URI()
	if uri == "" || strings.EqualFold(uri, "urn:ietf:params:scim:schemas:core:2.0:User") ||
		strings.EqualFold(uri, "urn:ietf:params:scim:schemas:core:2.0:Group") {
		return attrs
	}
	ext, _ := lookup(attrs, uri).(map[string]any)
	if ext == nil {
		ext = map[string]any{}
		attrs[uri] = ext
	}
	return ext
}

// key is the spelling of name already in m (attribute names are
// case-insensitive, RFC 7643 §2.1), or name.
func key(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func lookup(m map[string]any, name string) any { return m[key(m, name)] }

// matches evaluates a value filter on one element of a multi-valued
// attribute: the comparison operators on its sub-attributes, and, or, not.
// Strings compare case-insensitively.
func matches(el map[string]any, e filter.Expression) bool {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		v, present := el[key(el, e.AttributePath.AttributeName)]
		if e.Operator == filter.PR {
			return present && v != nil && v != ""
		}
		got := strings.ToLower(fmt.Sprint(v))
		want := strings.ToLower(fmt.Sprint(e.CompareValue))
		switch e.Operator {
		case filter.EQ:
			return present && got == want
		case filter.NE:
			return !present || got != want
		case filter.CO:
			return present && strings.Contains(got, want)
		case filter.SW:
			return present && strings.HasPrefix(got, want)
		case filter.EW:
			return present && strings.HasSuffix(got, want)
		}
		return false
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return matches(el, e.Left) && matches(el, e.Right)
		}
		return matches(el, e.Left) || matches(el, e.Right)
	case *filter.NotExpression:
		return !matches(el, e.Expression)
	}
	return false
}

// elementOf is the element a filter of eq comparisons joined by and
// describes ({"type": "work"} for type eq "work"); nil for any other
// filter.
func elementOf(e filter.Expression) map[string]any {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ {
			return nil
		}
		return map[string]any{e.AttributePath.AttributeName: e.CompareValue}
	case *filter.LogicalExpression:
		if e.Operator != filter.AND {
			return nil
		}
		l, r := elementOf(e.Left), elementOf(e.Right)
		if l == nil || r == nil {
			return nil
		}
		for k, v := range r {
			l[k] = v
		}
		return l
	}
	return nil
}

// normalizePatch turns the string booleans Entra ID sends for active
// ("value": "False", or {"active": "True"} without a path) into JSON
// booleans, which the schema requires, and its manager id into the
// complex manager. Anything else, and a body that is
// not a PATCH request, is passed on unchanged for the library to judge.
func normalizePatch(body []byte) []byte {
	var req map[string]any
	if json.Unmarshal(body, &req) != nil {
		return body
	}
	ops, _ := lookup(req, "Operations").([]any)
	changed := false
	for _, o := range ops {
		op, _ := o.(map[string]any)
		if op == nil {
			continue
		}
		path, _ := lookup(op, "path").(string)
		vk := key(op, "value")
		switch v := op[vk].(type) {
		case string:
			// Entra ID sends the enterprise manager as its id alone; the
			// schema's manager is complex ({"value": id}).
			if lp := strings.ToLower(path); lp == "manager" || strings.HasSuffix(lp, ":user:manager") {
				op[vk], changed = map[string]any{"value": v}, true
			}
			if strings.EqualFold(path, "active") {
				if b, err := strconv.ParseBool(strings.ToLower(v)); err == nil {
					op[vk], changed = b, true
				}
			}
		case map[string]any:
			ak := key(v, "active")
			if s, ok := v[ak].(string); ok && path == "" {
				if b, err := strconv.ParseBool(strings.ToLower(s)); err == nil {
					v[ak], changed = b, true
				}
			}
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return out
}
