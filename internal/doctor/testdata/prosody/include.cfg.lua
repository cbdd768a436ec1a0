-- The host's settings in an included file, as Debian's conf.d does.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
Include "included.cfg.lua"
