-- Prosody with tokenauthd's module, from tokenauthd's package: the README's example
-- configuration, and a component (which doctor leaves alone).
Include "../../../../prosody/example.prosody.cfg.lua"

Component "conference.example.org" "muc"
