// Package man holds the Markdown sources of tokenauthd's manual pages,
// tokenauthd(8) and tokenauthd.toml(5), which scripts/package turns into
// roff with go-md2man. Its tests hold the pages to the program: every
// subcommand, usage line and flag that -h prints is in tokenauthd.8.md and
// nothing else is; every option of config.toml.example is in
// tokenauthd.toml.5.md, and every option there is one the configuration
// parser knows.
//
// It has no code: it must never be imported.
package man
