package sshhost

import "strings"

// quote makes s one word for the remote login shell: inside single quotes
// a POSIX shell takes everything literally ($, `, \, ", spaces, newlines)
// except the single quote itself, which closes, is escaped and reopens.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commandLine is argv as one line for the remote shell, every word quoted:
// an SSH session carries a command as a single string, not an argv.
func commandLine(argv ...string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = quote(a)
	}
	return strings.Join(words, " ")
}
