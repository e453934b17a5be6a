-- Runs an Argo CD health check the way Argo CD does: the script is one chunk, called with the
-- global `obj` (the object as a table); it returns a table with `status` and `message`. The chunk
-- gets base functions and the table, string and math libraries, no io or os, so a check cannot
-- come to need more than Argo CD's sandbox is sure to give.
-- Usage: lua5.4 argocd_health_harness.lua HEALTH_LUA OBJECT_LUA (a file that returns the object).
local script, object = arg[1], arg[2]

local env = {
  obj = dofile(object),
  table = table,
  string = string,
  math = math,
}
for _, name in ipairs({
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
  "unpack", "xpcall",
}) do
  env[name] = _G[name]
end
env._G = env

local chunk, err = loadfile(script, "t", env)
if chunk == nil then
  io.stderr:write(err, "\n")
  os.exit(2)
end
local hs = chunk()
if type(hs) ~= "table" then
  io.stderr:write("the script returned ", type(hs), ", not a table\n")
  os.exit(3)
end
-- Line 1 the status, the rest the message (messages are one line; the test checks).
io.write(tostring(hs.status), "\n", tostring(hs.message), "\n")
