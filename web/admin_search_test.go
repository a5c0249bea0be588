package web_test

import (
	"net/http"
	"net/url"
	"testing"
)

// The admin API's search and audit filters answer from the same broker
// queries as the console, with a cursor; a deprovisioned subject says why.
func TestAdminSearchAndAuditFilters(t *testing.T) {
	e := newAdminEnv(t)
	e.signIn(t)
	a := func(path string, want int) map[string]any {
		t.Helper()
		status, m := e.call(t, adminToken, http.MethodGet, path, "")
		if status != want {
			t.Fatalf("GET %s = %d %v, want %d", path, status, m, want)
		}
		return m
	}
	subs := a("/admin/v1/subjects?q=ALICE%40", 200)["subjects"].([]any)
	if len(subs) != 1 || subs[0].(map[string]any)["email"] != "alice@example.com" {
		t.Fatalf("search ALICE@ = %v, want alice", subs)
	}
	id := subs[0].(map[string]any)["id"].(string)
	if m := a("/admin/v1/subjects?q=zed", 200); len(m["subjects"].([]any)) != 0 || m["next"] != nil {
		t.Errorf("search zed = %v, want none and no next", m)
	}
	a("/admin/v1/subjects?q=a&limit=0", 400)

	if status, m := e.call(t, adminToken, http.MethodPost, "/admin/v1/subjects/"+url.PathEscape(id)+"/deprovision", `{"reason":"left"}`); status != 200 {
		t.Fatalf("deprovision = %d %v", status, m)
	}
	s := a("/admin/v1/subjects/"+url.PathEscape(id), 200)["subject"].(map[string]any)
	if s["disabled_by"] != "admin-api" || s["disabled_reason"] != "left" || s["disabled_at"] == nil {
		t.Errorf("subject after deprovision = %v, want disabled_at, disabled_by admin-api, disabled_reason left", s)
	}
	events := a("/admin/v1/audit?person="+url.QueryEscape(id)+"&action=deprovision", 200)["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["reason"] != "left" {
		t.Errorf("audit filtered = %v, want the deprovisioning", events)
	}
	if events := a("/admin/v1/audit?action=reinstate", 200)["events"].([]any); len(events) != 0 {
		t.Errorf("audit action=reinstate = %v, want none", events)
	}
	a("/admin/v1/audit?since=yesterday", 400)
}
