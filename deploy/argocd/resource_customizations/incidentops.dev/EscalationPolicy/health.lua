-- Argo CD health check of an incidentops.dev EscalationPolicy (docs/gitops.md says why).
-- Argo CD sets the global `obj` and runs this with gopher-lua: Lua 5.1, no libraries.
-- Healthy: Ready=True. Degraded: Ready=False (a channel's Secret missing, not labelled or without
-- its key, a channel that keeps failing, an invalid spec). Progressing: not looked at yet, the
-- operator has not observed the latest generation, or Ready is Unknown.
local hs = {}

local function ready_condition(status)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local reason = condition.reason or "Ready"
  if condition.message ~= nil and condition.message ~= "" then
    return reason .. ": " .. condition.message
  end
  return reason
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local ready = nil
if status ~= nil then
  ready = ready_condition(status)
end

if status == nil or ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the policy"
elseif generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check generation " .. tostring(generation)
    .. " (it checked " .. tostring(status.observedGeneration or "none") .. ")"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
