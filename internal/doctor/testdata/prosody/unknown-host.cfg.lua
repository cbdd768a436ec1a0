-- A second VirtualHost authenticates with tokenauthd, which has no secrets
-- for it; a third is disabled and is not checked.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
authentication = "tokenauthd"

VirtualHost "example.org"

VirtualHost "chat.example.org"

VirtualHost "old.example.org"
	enabled = false
