-- prosody-modules' mod_auth_external_insecure with the stdin/stdout helper.
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
authentication = "external_insecure"
external_auth_protocol = "generic"
external_auth_command = "/usr/bin/tokenauthd"

VirtualHost "example.org"
