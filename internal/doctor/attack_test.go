package doctor

import (
	"context"
	"os"
	"path/filepath"
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
