-- tokenauthd has secrets for example.org, but Prosody checks its own
-- passwords there (authentication's default, internal_hashed).
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
tokenauthd_socket = "/run/tokenauthd/tokenauthd.sock"

VirtualHost "example.org"
