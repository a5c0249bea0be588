// Package config is the vocabulary that every package's configuration type
// shares: Duration and StringList (YAML scalars with Keyward's own error
// wording) and Problems, which collects configuration problems by YAML field
// path ("upstreams[0].claimMapping.groups[1]") with the fix.
//
// Each package owns its configuration type (yaml tags, camelCase keys), its
// defaults (an exported SetDefaults, applied once by the loader) and its
// validation (Validate, reporting *FieldError by the path below its own
// section). cmd/keyward composes those types into the shape of keyward.yaml
// and prefixes their paths; see docs/architecture.md.
//
// It imports only the standard library, go.yaml.in/yaml/v3, the loopback
// rule (web/loopback) and its own std-only part, cmd/config/field (the
// problem type FieldError and the URL rule), so every package may import
// it; web/verify, whose configuration stays free of YAML, imports only
// cmd/config/field. It lives under cmd
// because it is the vocabulary of the binary's configuration files and the
// module's top-level folders are fixed; it is a library, not a command.
package config
