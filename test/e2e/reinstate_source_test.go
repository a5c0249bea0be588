package e2e

import (
	"net/http"
	"testing"

	"github.com/keyward/keyward/broker"
)

// An identity provider must not undo an operator's deprovisioning: its
// reactivation (SCIM active true, SSF account-enabled) reinstates only a
// person that same source disabled. These replay what an IdP sends when an
// administrator there toggles a user off and on after Keyward's operator
// deprovisioned them; both reinstated the person before.

// TestSCIMActiveTrueKeepsAnOperatorsDeprovisioning: bob is provisioned and
// signs in; an operator deprovisions him; the IdP then deactivates and
// reactivates him (PATCH active false, PATCH active true). He stays
// disabled, the User answers active false, and the audit says why. A
// deactivation by SCIM itself is still undone by SCIM.
func TestSCIMActiveTrueKeepsAnOperatorsDeprovisioning(t *testing.T) {
	e := newSCIMEnv(t)
	ctx := t.Context()
	id := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob).body["id"].(string)
	e.signInAs(t, "bob")
	sub := broker.SubjectID("corp", "demo-bob")
	if _, err := e.b.Broker.Deprovision(ctx, sub, "left the company", "admin:ops"); err != nil {
		t.Fatal(err)
	}

	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate)
	r := e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaActivate)
	s, err := e.b.Broker.Subject(ctx, sub)
	if err != nil || !s.Disabled || s.DisabledBy != "admin:ops" {
		t.Fatalf("after SCIM active true: %+v, %v; want still disabled by admin:ops", s, err)
	}
	if r.body["active"] != false {
		t.Errorf("PATCH active true answered %s; want active false (the person stays disabled)", r.raw)
	}
	if got := e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users/"+id, ""); got.body["active"] != false {
		t.Errorf("GET after the ignored reactivation: %s, want active false", got.raw)
	}
	audit, _ := e.b.Broker.AuditEvents(ctx, 1)
	if len(audit) != 1 || audit[0].Actor != "scim:corp" || audit[0].Action != broker.ActionSCIMReinstateIgnored || audit[0].Target != sub {
		t.Errorf("last audit event = %+v, want %s by scim:corp", audit, broker.ActionSCIMReinstateIgnored)
	}

	// The operator reinstates; SCIM's own deactivation is SCIM's to undo.
	if _, err := e.b.Broker.Reinstate(ctx, sub, "back", "admin:ops"); err != nil {
		t.Fatal(err)
	}
	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate)
	if s, _ := e.b.Broker.Subject(ctx, sub); !s.Disabled || s.DisabledBy != "scim:corp" {
		t.Fatalf("after SCIM active false: %+v, want disabled by scim:corp", s)
	}
	if r := e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaActivate); r.body["active"] != true {
		t.Errorf("PATCH active true answered %s, want active true", r.raw)
	}
	if s, _ := e.b.Broker.Subject(ctx, sub); s.Disabled {
		t.Errorf("SCIM active true after SCIM's own deactivation: %+v, want reinstated", s)
	}
}

// TestSSFAccountEnabledKeepsAnOperatorsDeprovisioning: an operator
// deprovisions bob; the transmitter's account-enabled about him (iss_sub)
// is acknowledged, audited and leaves him disabled. A deactivation by the
// stream itself (account-disabled) is still undone by account-enabled.
func TestSSFAccountEnabledKeepsAnOperatorsDeprovisioning(t *testing.T) {
	e := newSSFEnv(t)
	ctx := t.Context()
	e.signInAs(t, "bob")
	sub := broker.SubjectID("corp", "demo-bob")
	issSub := map[string]any{"format": "iss_sub", "iss": e.idps[0].URL(), "sub": "demo-bob"}
	if _, err := e.b.Broker.Deprovision(ctx, sub, "stolen laptop", "admin:ops"); err != nil {
		t.Fatal(err)
	}

	enabled := e.tr.sign(t, e.set("en1", issSub, broker.EventAccountEnabled), nil, "secevent+jwt")
	if status, m := e.push(t, enabled); status != http.StatusAccepted {
		t.Fatalf("push account-enabled = %d %v, want 202 (acknowledged)", status, m)
	}
	if s, _ := e.b.Broker.Subject(ctx, sub); !s.Disabled || s.DisabledBy != "admin:ops" {
		t.Fatalf("after account-enabled: %+v, want still disabled by admin:ops", s)
	}
	audit, _ := e.b.Broker.AuditEvents(ctx, 1)
	if len(audit) != 1 || audit[0].Actor != "ssf:corp" || audit[0].Action != broker.ActionSSFReinstateIgnored || audit[0].Target != sub {
		t.Errorf("last audit event = %+v, want %s by ssf:corp", audit, broker.ActionSSFReinstateIgnored)
	}

	if _, err := e.b.Broker.Reinstate(ctx, sub, "back", "admin:ops"); err != nil {
		t.Fatal(err)
	}
	disabled := e.tr.sign(t, e.set("dis1", issSub, broker.EventAccountDisabled), nil, "secevent+jwt")
	if status, m := e.push(t, disabled); status != http.StatusAccepted {
		t.Fatalf("push account-disabled = %d %v, want 202", status, m)
	}
	enabled = e.tr.sign(t, e.set("en2", issSub, broker.EventAccountEnabled), nil, "secevent+jwt")
	if status, m := e.push(t, enabled); status != http.StatusAccepted {
		t.Fatalf("push account-enabled = %d %v, want 202", status, m)
	}
	if s, _ := e.b.Broker.Subject(ctx, sub); s.Disabled {
		t.Errorf("account-enabled after the stream's own account-disabled: %+v, want reinstated", s)
	}
}
