package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// Index keys join their parts with NUL, so an indexed value containing NUL
// could alias another; such values are rejected on write.
const sep = "\x00"

// errChangedKey: an updater changed the fields that key its record.
var errChangedKey = errors.New("updater changed the record key")

// checkKey validates a value that becomes part of a primary or index key.
func checkKey(name, v string, required bool) error {
	if required && v == "" {
		return fmt.Errorf("%s is empty", name)
	}
	if strings.Contains(v, sep) {
		return fmt.Errorf("%s contains a NUL byte", name)
	}
	return nil
}

func grantKey(kind store.GrantKind, signature string) []byte {
	return []byte(string(kind) + sep + signature)
}

func checkGrantKey(kind store.GrantKind, signature string) error {
	return errors.Join(checkKey("kind", string(kind), true), checkKey("signature", signature, true))
}

// indexKey is value\0primary: every index entry of value shares the prefix
// value\0, and the primary key is what follows it.
func indexKey(value string, primary []byte) []byte {
	k := make([]byte, 0, len(value)+1+len(primary))
	k = append(k, value...)
	k = append(k, sep...)
	return append(k, primary...)
}

// setIndex moves the entry of primary in bucket from oldValue to newValue.
// With create set there is no old entry.
func setIndex(tx *bolt.Tx, bucket []byte, create bool, oldValue, newValue string, primary []byte) error {
	b := tx.Bucket(bucket)
	if !create && oldValue == newValue {
		return nil
	}
	if !create {
		if err := b.Delete(indexKey(oldValue, primary)); err != nil {
			return err
		}
	}
	return b.Put(indexKey(newValue, primary), nil)
}

// scanIndex returns the primary keys indexed under value (and, with
// subPrefix, whose primary key starts with it). The keys are copies, safe
// to use after the cursor moves or the bucket changes.
func scanIndex(tx *bolt.Tx, bucket []byte, value, subPrefix string) [][]byte {
	prefix := []byte(value + sep + subPrefix)
	var keys [][]byte
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k[len(value)+1:]))
	}
	return keys
}
