-- The module is installed, but not where Prosody looks for modules.
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
authentication = "tokenauthd"

VirtualHost "example.org"
