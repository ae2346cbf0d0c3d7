//go:build !linux

package etcddata

// renameNoReplace: without Linux's RENAME_NOREPLACE, check then rename.
func renameNoReplace(from, to string) error { return renameNoReplaceFallback(from, to) }
