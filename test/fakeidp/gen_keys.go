//go:build ignore

// gen_keys writes testdata/keys.json, the pre-generated signing keys that
// fakeidp serves, so that tests do not pay for RSA key generation.
//
//	go run gen_keys.go
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/go-jose/go-jose/v4"
)

const perAlgorithm = 4

func main() {
	set := map[string][]jose.JSONWebKey{}
	for i := range perAlgorithm {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			log.Fatal(err)
		}
		set["RS256"] = append(set["RS256"], jose.JSONWebKey{Key: rk, KeyID: fmt.Sprintf("fakeidp-rs256-%d", i), Algorithm: "RS256", Use: "sig"})
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		set["ES256"] = append(set["ES256"], jose.JSONWebKey{Key: ek, KeyID: fmt.Sprintf("fakeidp-es256-%d", i), Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("testdata/keys.json", append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
