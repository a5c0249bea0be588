//go:build unix

package bolt

import (
	"io/fs"
	"os"
	"syscall"
)

// sameOwner gives the file at path the owner and group that info
// describes, when it has others (a root-run compact must not hand keyward's
// file to root).
func sameOwner(path string, info fs.FileInfo) error {
	want, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := os.Stat(path)
	if err != nil {
		return err
	}
	if got, ok := cur.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	return os.Chown(path, int(want.Uid), int(want.Gid))
}
