package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/web"
)

func (a *adminCLI) subjectsList(cmd *cobra.Command) error {
	var out struct{ Subjects []web.AdminSubject }
	if ok, err := a.run(cmd, http.MethodGet, "subjects", nil, nil, &out); !ok {
		return err
	}
	tw := newTable(cmd.OutOrStdout(), "SUBJECT", "EMAIL", "NAME", "UPSTREAM", "STATUS", "LAST LOGIN")
	for _, s := range out.Subjects {
		row(tw, s.ID, s.Email, s.Name, s.UpstreamID, status(s.Disabled), fmtTime(s.LastLoginAt))
	}
	return tw.Flush()
}

func status(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "active"
}

func (a *adminCLI) subjectsShow(cmd *cobra.Command, id string) error {
	var out struct {
		Subject  web.AdminSubject
		Sessions []web.AdminSession
	}
	if ok, err := a.run(cmd, http.MethodGet, "subjects/"+url.PathEscape(id), nil, nil, &out); !ok {
		return err
	}
	w := cmd.OutOrStdout()
	s := out.Subject
	tw := newTable(w, "Subject:", s.ID)
	row(tw, "Email:", s.Email)
	row(tw, "Name:", s.Name)
	row(tw, "Upstream:", s.UpstreamID)
	row(tw, "Status:", status(s.Disabled))
	row(tw, "Not before:", fmtTime(s.NotBefore))
	row(tw, "Created:", fmtTime(s.CreatedAt))
	row(tw, "Last login:", fmtTime(s.LastLoginAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s:\n", plainCount(len(out.Sessions), "session"))
	if len(out.Sessions) == 0 {
		return nil
	}
	return sessionsTable(w, out.Sessions)
}

func (a *adminCLI) deprovision(cmd *cobra.Command, id, reason string) error {
	var out web.AdminDeprovision
	if ok, err := a.run(cmd, http.MethodPost, "subjects/"+url.PathEscape(id)+"/deprovision", nil, map[string]string{"reason": reason}, &out); !ok {
		return err
	}
	printDeprovision(cmd, out)
	return nil
}

func printDeprovision(cmd *cobra.Command, d web.AdminDeprovision) {
	fmt.Fprintf(cmd.OutOrStdout(), "Deprovisioned %s: %s and %s deleted; revocation feed entry %d (tokens issued before %s are void).\n",
		printable(d.Subject), plainCount(d.SessionsDeleted, "session"), plainCount(d.GrantsDeleted, "grant"), d.Revocation.Seq, fmtTime(d.Revocation.NotBefore))
}

func (a *adminCLI) deprovisionEmail(cmd *cobra.Command, email, reason string) error {
	var out struct{ Results []web.AdminDeprovision }
	if ok, err := a.run(cmd, http.MethodPost, "deprovision", nil, map[string]string{"email": email, "reason": reason}, &out); !ok {
		return err
	}
	for _, d := range out.Results {
		printDeprovision(cmd, d)
	}
	return nil
}

func (a *adminCLI) reinstate(cmd *cobra.Command, id, reason string) error {
	var out struct{ Subject web.AdminSubject }
	if ok, err := a.run(cmd, http.MethodPost, "subjects/"+url.PathEscape(id)+"/reinstate", nil, map[string]string{"reason": reason}, &out); !ok {
		return err
	}
	s := out.Subject
	msg := fmt.Sprintf("Reinstated %s", printable(s.ID))
	if s.Email != "" {
		msg += " (" + printable(s.Email) + ")"
	}
	msg += ": they may sign in again."
	if s.NotBefore != nil {
		msg += " Tokens issued before " + fmtTime(s.NotBefore) + " stay void."
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
	return nil
}

func (a *adminCLI) sessionsList(cmd *cobra.Command, subject string) error {
	q := url.Values{}
	if subject != "" {
		q.Set("subject", subject)
	}
	var out struct{ Sessions []web.AdminSession }
	if ok, err := a.run(cmd, http.MethodGet, "sessions", q, nil, &out); !ok {
		return err
	}
	return sessionsTable(cmd.OutOrStdout(), out.Sessions)
}

func sessionsTable(w io.Writer, sessions []web.AdminSession) error {
	tw := newTable(w, "SESSION", "SUBJECT", "EMAIL", "UPSTREAM", "CREATED", "EXPIRES")
	for _, s := range sessions {
		row(tw, s.ID, s.Subject, s.Email, s.UpstreamID, fmtTime(s.CreatedAt), fmtTime(s.ExpiresAt))
	}
	return tw.Flush()
}

func (a *adminCLI) sessionsRevoke(cmd *cobra.Command, id, reason string) error {
	var out struct {
		Session              web.AdminSession
		GrantsDeleted        int  `json:"grants_deleted"`
		RefreshTokensRevoked bool `json:"refresh_tokens_revoked"`
		Revocation           web.AdminRevocation
	}
	if ok, err := a.run(cmd, http.MethodDelete, "sessions/"+url.PathEscape(id), nil, map[string]string{"reason": reason}, &out); !ok {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Revoked session %s of %s; revocation feed entry %d.\n", printable(out.Session.ID), printable(out.Session.Subject), out.Revocation.Seq)
	if out.RefreshTokensRevoked {
		fmt.Fprintf(w, "%s of the session deleted.\n", plainCount(out.GrantsDeleted, "grant"))
	} else {
		fmt.Fprintln(w, "Warning: this store cannot delete a session's refresh tokens; they stay valid until they expire. Deprovision the subject to end them.")
	}
	return nil
}

func (a *adminCLI) keys(cmd *cobra.Command, rotate bool, reason string) error {
	var out web.AdminKeySet
	method, path, body := http.MethodGet, "keys", any(nil)
	if rotate {
		method, path, body = http.MethodPost, "keys/rotate", map[string]string{"reason": reason}
	}
	if ok, err := a.run(cmd, method, path, nil, body, &out); !ok {
		return err
	}
	w := cmd.OutOrStdout()
	if rotate {
		fmt.Fprintln(w, "Early rotation requested: the next key (already published) signs from its activation time.")
	}
	tw := newTable(w, "KID", "ALG", "STATE", "CREATED", "ACTIVATES", "RETIRED", "EXPIRES")
	for _, k := range out.Keys {
		row(tw, k.ID, k.Algorithm, k.State, fmtTime(k.CreatedAt), fmtTime(k.ActivatesAt), fmtTime(k.RetiredAt), fmtTime(k.ExpiresAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Next rotation: %s\n", fmtTime(out.NextRotation))
	return nil
}

func (a *adminCLI) clientsList(cmd *cobra.Command) error {
	var out struct {
		Clients []struct {
			ID               string   `json:"id"`
			Name             string   `json:"name"`
			Public           bool     `json:"public"`
			GrantTypes       []string `json:"grant_types"`
			Audiences        []string `json:"audiences"`
			RevocationReader bool     `json:"revocation_reader"`
		}
	}
	if ok, err := a.run(cmd, http.MethodGet, "clients", nil, nil, &out); !ok {
		return err
	}
	tw := newTable(cmd.OutOrStdout(), "CLIENT", "NAME", "TYPE", "GRANT TYPES", "AUDIENCES", "FEED READER")
	for _, c := range out.Clients {
		typ := "confidential"
		if c.Public {
			typ = "public"
		}
		row(tw, c.ID, c.Name, typ, strings.Join(c.GrantTypes, ","), strings.Join(c.Audiences, ","), strconv.FormatBool(c.RevocationReader))
	}
	return tw.Flush()
}

func (a *adminCLI) auditTail(cmd *cobra.Command, limit int) error {
	if limit < 1 || limit > 1000 {
		return usageError("--limit must be from 1 to 1000")
	}
	var out struct {
		Events []struct {
			Seq    int64      `json:"seq"`
			At     *time.Time `json:"at"`
			Actor  string     `json:"actor"`
			Action string     `json:"action"`
			Target string     `json:"target"`
			Reason string     `json:"reason"`
		}
	}
	if ok, err := a.run(cmd, http.MethodGet, "audit", url.Values{"limit": {strconv.Itoa(limit)}}, nil, &out); !ok {
		return err
	}
	tw := newTable(cmd.OutOrStdout(), "SEQ", "AT", "ACTOR", "ACTION", "TARGET", "REASON")
	for _, e := range out.Events {
		row(tw, strconv.FormatInt(e.Seq, 10), fmtTime(e.At), e.Actor, e.Action, e.Target, e.Reason)
	}
	return tw.Flush()
}

func (a *adminCLI) scimRotateToken(cmd *cobra.Command, upstream, reason string) error {
	var out web.AdminSCIMToken
	if ok, err := a.run(cmd, http.MethodPost, "scim/"+url.PathEscape(upstream)+"/token", nil, map[string]string{"reason": reason}, &out); !ok {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "New SCIM token for upstream %s (shown once; the previous token works until the next rotation):\n%s\n", out.Upstream, out.Token)
	return nil
}
