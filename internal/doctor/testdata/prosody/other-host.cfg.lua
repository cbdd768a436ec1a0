-- Prosody serves example.net with tokenauthd; tokenauthd has secrets for
-- example.org only.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
authentication = "tokenauthd"

VirtualHost "example.net"
