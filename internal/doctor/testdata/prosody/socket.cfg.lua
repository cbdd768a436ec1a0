-- The module dials another socket than the daemon's.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
authentication = "tokenauthd"
tokenauthd_socket = "/tmp/tokenauthd.sock"

VirtualHost "example.org"
