// Package scim is the SCIM 2.0 service provider (RFC 7643, RFC 7644) at
// /scim/v2/{upstream}: the HTTP side of broker.Provisioning, one
// service provider per upstream with provisioning on. The protocol surface
// (ServiceProviderConfig, ResourceTypes, Schemas, request validation,
// filters, list responses, error JSON) is github.com/elimity-com/scim's,
// with github.com/scim2/filter-parser/v2 for filters and PATCH paths; this
// package adds what the library leaves to its user: the bearer token per
// upstream, the https-or-loopback rule, a body-size answer, the quirks of
// real provisioning clients (Entra ID's string booleans), the PATCH
// operations applied to a resource, and the mapping of broker errors to
// SCIM errors. What provisioning does to a person (deprovision, reinstate,
// groups) is the broker's.
//
// It imports broker, store (the record type), web/loopback, the two SCIM
// libraries and the standard library; never a store backend, web or
// web/verify. test/archtest holds it to that.
package scim
