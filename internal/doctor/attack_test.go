package doctor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Doctor runs Prosody's configuration loader with the Lua interpreter, as
// root. Lua's default package.path and package.cpath hold the working
// directory ("./?.lua", "./?/init.lua", "./?.so"), and prosody.lua
// requires "prosody.loader" and "loader", which Prosody 0.12 does not
// have: whoever can write in the directory root runs doctor from (/tmp, a
// user's home) has those found there, and runs code as root. prosodyctl
// drops the relative entries before it requires anything.
func TestAttackDoctorLuaFromWorkingDirectory(t *testing.T) {
	requireProsody(t)
	d := newDoctor(context.Background(), Options{})
	in, ok := d.findProsody()
	if !ok {
		t.Fatal("Prosody's launcher not found")
	}
	cfg, err := filepath.Abs("testdata/prosody/clean.cfg.lua")
	if err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	planted := `local f = io.open(` + luaQuote(marker) + `, "a"); f:write(...); f:write("\n"); f:close()` + "\n"
	for _, name := range []string{"prosody/loader.lua", "loader.lua", "prosody/loader/init.lua", "core/configmanager.lua"} {
		p := filepath.Join(cwd, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(planted), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(cwd)
	if _, err := d.readProsody(in, cfg); err != nil {
		t.Logf("readProsody: %v", err)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Errorf("doctor ran Lua files of its working directory: %q", b)
	}
}

// A host's [jwt] keys_file is one of the files the daemon reads at start,
// as token_secret_file is: doctor must tell when the daemon's user cannot
// read it (the daemon then exits, and every login is refused), and must
// take a "%d/" key set for a systemd credential, as it does a "%d/"
// secret, not for a mistake.
func TestAttackDoctorJWTKeysFile(t *testing.T) {
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub))), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig := func(name, keysFile string) string {
		p := filepath.Join(dir, name)
		body := "[replay]\njournal = \"/var/lib/tokenauthd/replay.journal\"\n\n[hosts.\"example.org\".jwt]\nkeys_file = " + strconv.Quote(keysFile) + "\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []doctorCase{
		{name: "key set the daemon cannot read", config: writeConfig("unreadable.toml", keys),
			setup: func(s *fakeSys) { s.files[keys] = fakeFile{mode: 0o600, disk: keys} }, exit: 1,
			want: []want{{sev: Error, key: "secret file " + keys, msg: "cannot read it"}}},
		{name: "key set a credential", config: writeConfig("credential.toml", "%d/secrets_keys.json"),
			want: []want{{sev: Note, msg: "systemd credentials"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}
