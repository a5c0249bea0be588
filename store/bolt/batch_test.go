package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/bolt"
)

// TestApplyAbortInSharedCommit mixes, in the group committer's shared
// transactions, single-record writes with batches that fail after writing
// (a GrantUpdate, then a conflicting GrantCreate): every batch is rolled
// back whole, and no other write of its shared transaction is lost.
func TestApplyAbortInSharedCommit(t *testing.T) {
	for _, opts := range []bolt.Options{{}, {BatchDelay: time.Millisecond}} {
		t.Run(fmt.Sprintf("BatchDelay=%v", opts.BatchDelay), func(t *testing.T) {
			const n = 16
			s := open(t, opts)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			target := store.Grant{Kind: store.GrantRefreshToken, Signature: "rt-1", RequestID: "req-1", Active: true}
			taken := store.Grant{Kind: store.GrantRefreshToken, Signature: "taken", RequestID: "req-0"}
			for _, g := range []store.Grant{target, taken} {
				if err := s.CreateGrant(ctx, g); err != nil {
					t.Fatalf("CreateGrant(%s) = %v", g.Signature, err)
				}
			}

			var wg sync.WaitGroup
			createErrs, applyErrs := make([]error, n), make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					createErrs[i] = s.CreateGrant(ctx, store.Grant{Kind: store.GrantRefreshToken,
						Signature: fmt.Sprintf("single-%02d", i), RequestID: "req-2"})
				})
				wg.Go(func() {
					<-start
					_, applyErrs[i] = s.Apply(ctx, store.Batch{
						GrantUpdates: []store.GrantUpdate{{Kind: target.Kind, Signature: target.Signature,
							Update: func(g store.Grant) (store.Grant, error) {
								g.Active, g.RequestID = false, "req-3"
								return g, nil
							}}},
						GrantCreates: []store.Grant{
							{Kind: store.GrantRefreshToken, Signature: fmt.Sprintf("batch-%02d", i), RequestID: "req-3"},
							taken,
						},
						Revocations: []store.Revocation{{Kind: store.RevokeToken, TokenID: fmt.Sprintf("jti-%02d", i)}},
					})
				})
			}
			close(start)
			wg.Wait()

			for i := range n {
				if createErrs[i] != nil {
					t.Errorf("CreateGrant(single-%02d) = %v, want nil", i, createErrs[i])
				}
				if !errors.Is(applyErrs[i], store.ErrConflict) {
					t.Errorf("Apply %d = %v, want ErrConflict", i, applyErrs[i])
				}
			}
			if n, err := s.DeleteGrantsByRequest(ctx, "req-2"); n != 16 || err != nil {
				t.Errorf("DeleteGrantsByRequest(req-2) = %d, %v; want 16 single-record grants, nil", n, err)
			}
			if n, err := s.DeleteGrantsByRequest(ctx, "req-3"); n != 0 || err != nil {
				t.Errorf("DeleteGrantsByRequest(req-3) = %d, %v; want 0 (no batch stored anything), nil", n, err)
			}
			got, err := s.GetGrant(ctx, target.Kind, target.Signature)
			if err != nil || !got.Active || got.RequestID != "req-1" {
				t.Errorf("GetGrant(rt-1) = Active %v, RequestID %q, %v; want true, req-1, nil (unchanged)", got.Active, got.RequestID, err)
			}
			if feed, highest, err := s.ListRevocations(ctx, 0, 0); len(feed) != 0 || highest != 0 || err != nil {
				t.Errorf("ListRevocations(0, 0) = %d entries, highest %d, %v; want none", len(feed), highest, err)
			}
		})
	}
}
