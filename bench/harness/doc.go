// Package harness starts Keyward's broker, a fake upstream IdP and a bare
// net/http handler on 127.0.0.1 listeners in one process, and drives them
// with closed-loop keep-alive Go clients: refresh grants, whole sign-ins and
// plain GETs, with latency percentiles and process CPU per operation.
//
// It is a measuring tool for bench/cmd/keyward-bench and the benchmarks in
// this directory; product packages must never import it.
package harness
