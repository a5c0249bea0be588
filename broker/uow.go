package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/keyward/keyward/store"
)

// unitOfWork gathers the store writes of one token request (or of one
// sign-in step: the callback, a single sign-on answer) and applies them as
// ONE store.Batch, in one short write transaction, once the tokens are
// signed and before the response is written.
//
// It rides in the request's context, which the house style otherwise bans
// (no transactions in ctx): fosite calls its storage interfaces from
// several handlers with nothing but ctx in common (the refresh reuse check
// before its own MaybeBeginTx, PKCE and OpenID Connect records in other
// handlers), so ctx is the only way to group them. Nothing else rides
// there, and only fositeStore and the sign-in code look for it
// (docs/architecture.md, "Where Keyward departs").
//
// Preconditions that decide a race ("this refresh token is still the
// family's current one", "this code is unused") are written as updaters
// and checked at commit, not when the record was read: a request that
// loses finds out from Apply and nothing of it is stored. Revocations
// are never gathered here: fosite's reuse paths and the loser of a race
// revoke at once (fositeStore.RevokeRefreshToken, RevokeAccessToken).
type unitOfWork struct {
	mu      sync.Mutex
	batch   store.Batch
	created map[store.GrantKey]store.Grant
	deleted map[store.GrantKey]bool
	// reads are the records as this request first read them: a re-read
	// (fosite reads the code twice) sees the same record, so a concurrent
	// commit is found at this unit's commit, not halfway through fosite.
	reads map[store.GrantKey]readResult
	// conflict, when set, is what an ErrConflict from Apply means (a
	// single-use token id presented twice).
	conflict error
	// redeemedCode is the signature of the authorize code a token request
	// redeems (InvalidateAuthorizeCodeSession), "" for other grants.
	redeemedCode string
	done         bool
}

type unitKey struct{}

// withUnitOfWork returns ctx carrying a new, empty unit of work.
func withUnitOfWork(ctx context.Context) (context.Context, *unitOfWork) {
	u := &unitOfWork{created: map[store.GrantKey]store.Grant{}, deleted: map[store.GrantKey]bool{}, reads: map[store.GrantKey]readResult{}}
	return context.WithValue(ctx, unitKey{}, u), u
}

// unitFrom returns the unit of work in ctx, nil when there is none or it
// has already been applied (later writes then go to the store at once).
func unitFrom(ctx context.Context) *unitOfWork {
	u, _ := ctx.Value(unitKey{}).(*unitOfWork)
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	return u
}

// batcher applies a unit of work (store.Store's Apply).
type batcher interface {
	Apply(ctx context.Context, b store.Batch) (store.BatchResult, error)
}

// errUnitDone: a write was offered to a unit already applied or dropped.
var errUnitDone = errors.New("unit of work already applied")

func (u *unitOfWork) edit(f func(b *store.Batch)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errUnitDone
	}
	f(&u.batch)
	return nil
}

// createGrant gathers the creation of g; Apply refuses it (ErrConflict)
// when the key exists by then. A second create of the same key in one
// unit is a conflict at once.
func (u *unitOfWork) createGrant(g store.Grant) error {
	k := store.GrantKey{Kind: g.Kind, Signature: g.Signature}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errUnitDone
	}
	if _, dup := u.created[k]; dup {
		return fmt.Errorf("create %s: %w", g.Kind, store.ErrConflict)
	}
	u.created[k] = g
	delete(u.deleted, k)
	u.batch.GrantCreates = append(u.batch.GrantCreates, g)
	return nil
}

// updateGrant gathers a read-modify-write of one grant; fn runs at commit
// on the stored record and its error aborts the whole unit.
func (u *unitOfWork) updateGrant(kind store.GrantKind, sig string, fn func(store.Grant) (store.Grant, error)) error {
	return u.edit(func(b *store.Batch) {
		b.GrantUpdates = append(b.GrantUpdates, store.GrantUpdate{Kind: kind, Signature: sig, Update: fn})
	})
}

// deleteGrant gathers the deletion of a grant (a missing one is ignored at
// commit).
func (u *unitOfWork) deleteGrant(kind store.GrantKind, sig string) error {
	k := store.GrantKey{Kind: kind, Signature: sig}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errUnitDone
	}
	u.deleted[k] = true
	u.batch.GrantDeletes = append(u.batch.GrantDeletes, k)
	return nil
}

type readResult struct {
	g   store.Grant
	err error // nil or ErrNotFound
}

// readGrant returns the grant (kind, sig) as this request sees it: as it
// first read it from the store (fetch), with the unit's own pending
// creates, deletes and updates applied.
func (u *unitOfWork) readGrant(kind store.GrantKind, sig string, fetch func() (store.Grant, error)) (store.Grant, error) {
	k := store.GrantKey{Kind: kind, Signature: sig}
	u.mu.Lock()
	r, ok := u.reads[k]
	u.mu.Unlock()
	if !ok {
		g, err := fetch()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return g, err // not kept: the next read tries again
		}
		r = readResult{g: g, err: err}
		u.mu.Lock()
		if first, ok := u.reads[k]; ok {
			r = first
		} else {
			u.reads[k] = r
		}
		u.mu.Unlock()
	}
	return u.overlay(k, r.g, r.err)
}

func (u *unitOfWork) overlay(k store.GrantKey, g store.Grant, err error) (store.Grant, error) {
	kind, sig := k.Kind, k.Signature
	u.mu.Lock()
	defer u.mu.Unlock()
	if c, ok := u.created[k]; ok {
		return c, nil
	}
	if u.deleted[k] {
		return store.Grant{}, fmt.Errorf("get %s: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return g, err
	}
	for _, up := range u.batch.GrantUpdates {
		if up.Kind == kind && up.Signature == sig {
			if next, uerr := up.Update(g); uerr == nil {
				g = next
			}
		}
	}
	return g, nil
}

// apply stores the gathered writes in one store.Apply, at most once; the
// unit is closed either way. An empty unit writes nothing. A ctx that has
// ended before apply stores nothing (context.Cause, wrapped).
func (u *unitOfWork) apply(ctx context.Context, st batcher) (store.BatchResult, error) {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return store.BatchResult{}, errUnitDone
	}
	u.done = true
	b := u.batch
	u.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return store.BatchResult{}, fmt.Errorf("apply unit of work: %w", context.Cause(ctx))
	}
	if b.IsEmpty() {
		return store.BatchResult{}, nil
	}
	res, err := st.Apply(ctx, b)
	if err != nil {
		if errors.Is(err, store.ErrConflict) && u.conflict != nil {
			return res, fmt.Errorf("%w: %w", u.conflict, err)
		}
		return res, fmt.Errorf("apply unit of work: %w", err)
	}
	return res, nil
}

// drop closes the unit without storing anything (the request failed).
func (u *unitOfWork) drop() {
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
}

// deleteLoginAttempt gathers the deletion of a login attempt; a missing
// one aborts the unit with ErrNotFound (a replayed callback loses).
func (u *unitOfWork) deleteLoginAttempt(id string) error {
	return u.edit(func(b *store.Batch) { b.LoginAttemptDeletes = append(b.LoginAttemptDeletes, id) })
}

// upsertSubject gathers a store.SubjectUpsert; its updater's error aborts
// the unit.
func (u *unitOfWork) upsertSubject(s store.SubjectUpsert) error {
	return u.edit(func(b *store.Batch) { b.SubjectUpserts = append(b.SubjectUpserts, s) })
}

// createSession gathers the creation of a Keyward session.
func (u *unitOfWork) createSession(s store.Session) error {
	return u.edit(func(b *store.Batch) { b.SessionCreates = append(b.SessionCreates, s) })
}

// createsSession reports whether the unit creates session id.
func (u *unitOfWork) createsSession(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.batch.SessionCreates {
		if s.ID == id {
			return true
		}
	}
	return false
}

// deletesOf returns the deletions of grants of kind the unit has gathered,
// applied or not.
func (u *unitOfWork) deletesOf(kind store.GrantKind) []store.GrantKey {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []store.GrantKey
	for _, k := range u.batch.GrantDeletes {
		if k.Kind == kind {
			out = append(out, k)
		}
	}
	return out
}
