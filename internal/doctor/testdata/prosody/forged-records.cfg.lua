-- The README's example configuration, and code that prints lines like
-- the loader's own, naming files that do not exist.
Include "../../../../prosody/example.prosody.cfg.lua"
for i = 1, 300 do print('file "/nonexistent/' .. i .. '.cfg.lua"') end
