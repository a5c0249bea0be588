//go:build !unix

package main

import "os"

// ownedByMe: the temporary folder is per user on Windows.
func ownedByMe(os.FileInfo) bool { return true }
