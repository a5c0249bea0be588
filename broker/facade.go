package broker

import (
	"context"
	"net/http"

	"github.com/keyward/keyward/store"
)

// The parts as web and cmd reach them through the Broker: one-line
// delegations, documented where the work is done.

// The sign-in part (signIn).

// Authorize: see signIn.Authorize.
func (b *Broker) Authorize(ctx context.Context, in AuthorizeInput) (Outcome, error) {
	return b.signIn.Authorize(ctx, in)
}

// ChooseUpstream: see signIn.ChooseUpstream.
func (b *Broker) ChooseUpstream(ctx context.Context, in ChooseInput) (string, error) {
	return b.signIn.ChooseUpstream(ctx, in)
}

// Callback: see signIn.Callback.
func (b *Broker) Callback(ctx context.Context, in CallbackInput) (Outcome, error) {
	return b.signIn.Callback(ctx, in)
}

// WriteClientAnswer writes an Outcome's answer to the client, through
// fosite.
func (b *Broker) WriteClientAnswer(ctx context.Context, w http.ResponseWriter, a *ClientAnswer) {
	b.signIn.WriteClientAnswer(ctx, w, a)
}

// RecheckStatus: see recheck.RecheckStatus.
func (b *Broker) RecheckStatus() []RecheckStatus { return b.recheck.RecheckStatus() }

// The token part (tokenEndpoint). The request body must already be
// size-limited by the caller.

// Token: see tokenEndpoint.Token.
func (b *Broker) Token(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if !b.tokenLimits.admit(ctx, w, r) { // per-client limits, tokenlimit.go
		return
	}
	b.tokens.Token(ctx, w, r)
}

// Revoke: see tokenEndpoint.Revoke.
func (b *Broker) Revoke(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	b.tokens.Revoke(ctx, w, r)
}

// Introspect: see tokenEndpoint.Introspect.
func (b *Broker) Introspect(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	b.tokens.Introspect(ctx, w, r)
}

// UserInfo: see tokenEndpoint.UserInfo.
func (b *Broker) UserInfo(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	b.tokens.UserInfo(ctx, w, r)
}

// The administration part (admin).

// Subject returns the subject id; an unknown one is ErrUnknownSubject.
func (b *Broker) Subject(ctx context.Context, id string) (store.Subject, error) {
	return b.admin.Subject(ctx, id)
}

// Subjects lists every known subject.
func (b *Broker) Subjects(ctx context.Context) ([]store.Subject, error) {
	return b.admin.Subjects(ctx)
}

// Sessions lists the Keyward sessions of subject (all when it is empty),
// oldest first.
func (b *Broker) Sessions(ctx context.Context, subject string) ([]store.Session, error) {
	return b.admin.Sessions(ctx, subject)
}

// AuditEvents returns the newest limit audit events, oldest first.
func (b *Broker) AuditEvents(ctx context.Context, limit int) ([]store.AuditEvent, error) {
	return b.admin.AuditEvents(ctx, limit)
}

// Clients lists the registered clients, by id.
func (b *Broker) Clients() []ClientInfo { return b.admin.Clients() }

// Deprovision: see admin.Deprovision.
func (b *Broker) Deprovision(ctx context.Context, subject, reason, actor string) (store.DeprovisionResult, error) {
	return b.admin.Deprovision(ctx, subject, reason, actor)
}

// DeprovisionByEmail: see admin.DeprovisionByEmail.
func (b *Broker) DeprovisionByEmail(ctx context.Context, email, reason, actor string) ([]SubjectDeprovisioning, error) {
	return b.admin.DeprovisionByEmail(ctx, email, reason, actor)
}

// FindSubjectsByEmail returns the subjects whose email is email, compared
// case-insensitively, in the store's order.
func (b *Broker) FindSubjectsByEmail(ctx context.Context, email string) ([]store.Subject, error) {
	return b.admin.FindSubjectsByEmail(ctx, email)
}

// Reinstate: see admin.Reinstate.
func (b *Broker) Reinstate(ctx context.Context, subject, reason, actor string) (store.Subject, error) {
	return b.admin.Reinstate(ctx, subject, reason, actor)
}

// RevokeSession: see admin.RevokeSession.
func (b *Broker) RevokeSession(ctx context.Context, sessionID, reason, actor string) (SessionRevocation, error) {
	return b.admin.RevokeSession(ctx, sessionID, reason, actor)
}

// RecordAdminAction writes an audit event for an action the broker does not
// carry out itself (such as a key rotation).
func (b *Broker) RecordAdminAction(ctx context.Context, actor, action, target, reason string) error {
	return b.admin.RecordAdminAction(ctx, actor, action, target, reason)
}

// Revocations: see admin.Revocations.
func (b *Broker) Revocations(ctx context.Context, after int64, clientID, secret string) (RevocationPage, error) {
	return b.admin.Revocations(ctx, after, clientID, secret)
}

// The logout part (rpLogout, backchannelSender, backchannelReceiver).

// EndSession: see rpLogout.EndSession.
func (b *Broker) EndSession(ctx context.Context, in EndSessionInput) (EndSessionOutcome, error) {
	return b.rpLogout.EndSession(ctx, in)
}

// BackchannelLogout: see backchannelReceiver.BackchannelLogout.
func (b *Broker) BackchannelLogout(ctx context.Context, upstreamID, rawToken string) (int, error) {
	return b.receiver.BackchannelLogout(ctx, upstreamID, rawToken)
}

// WaitBackchannelLogout blocks until the back-channel logout deliveries
// queued so far have finished (delivered, refused, given up or abandoned);
// Run must be running, or have run, for them to finish. For tests and
// graceful shutdown.
func (b *Broker) WaitBackchannelLogout() { b.sender.wait() }
