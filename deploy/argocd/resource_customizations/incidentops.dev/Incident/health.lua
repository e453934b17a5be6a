-- Argo CD health check of an incidentops.dev Incident (docs/gitops.md says why).
-- Argo CD sets the global `obj` and runs this with gopher-lua: Lua 5.1, no libraries.
-- Healthy: resolved or closed (the response is over; breaches and post-mortems are history).
-- Degraded: open, and the response is in trouble: Ready=False (no policy in effect, or the
-- operator cannot act on it), EscalationExhausted=True (everyone paged, nobody acknowledged),
-- SLABreached=True (a deadline of this episode was missed), or an action Failed.
-- Progressing: open and on time (triggered, acknowledged or contained), not looked at yet, or
-- the operator has not observed the latest generation.
local hs = {}

local function get_condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == type then
      return condition
    end
  end
  return nil
end

local function is_true(status, type)
  local condition = get_condition(status, type)
  return condition ~= nil and condition.status == "True"
end

local function describe(condition)
  local reason = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    return reason .. ": " .. condition.message
  end
  return reason
end

local status = obj.status
local spec = obj.spec or {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to look at the incident"
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    .. " (it observed " .. tostring(status.observedGeneration or "none") .. ")"
  return hs
end

-- "P1 Acknowledged", "DRILL P2 Triggered": what the incident is, before what is wrong with it.
local severity = status.severity or spec.severity
local phase = status.phase or "Triggered"
local prefix = phase
if severity ~= nil then
  prefix = severity .. " " .. phase
end
if spec.drill == true then
  prefix = "DRILL " .. prefix
end

local resolved = get_condition(status, "Resolved")
if phase == "Closed" or (resolved ~= nil and resolved.status == "True") then
  hs.status = "Healthy"
  hs.message = prefix
  if resolved ~= nil and resolved.status == "True" then
    hs.message = prefix .. ": " .. describe(resolved)
  end
  local postmortem = status.postmortem
  if postmortem ~= nil and (postmortem.state == "Pending" or postmortem.state == "Draft" or postmortem.state == "Overdue") then
    hs.message = hs.message .. "; post-mortem " .. postmortem.state
    if postmortem.dueBy ~= nil then
      hs.message = hs.message .. ", due by " .. postmortem.dueBy
    end
  end
  return hs
end

local problems = {}
local ready = get_condition(status, "Ready")
if ready ~= nil and ready.status == "False" then
  table.insert(problems, describe(ready))
end
for _, type in ipairs({ "EscalationExhausted", "SLABreached" }) do
  if is_true(status, type) then
    table.insert(problems, describe(get_condition(status, type)))
  end
end
local awaiting_approval = 0
if status.actions ~= nil then
  for _, action in ipairs(status.actions) do
    if action.phase == "Failed" then
      local problem = "action " .. tostring(action.name) .. " Failed"
      if action.message ~= nil and action.message ~= "" then
        problem = problem .. ": " .. action.message
      end
      table.insert(problems, problem)
    elseif action.phase == "AwaitingApproval" then
      awaiting_approval = awaiting_approval + 1
    end
  end
end

if #problems > 0 then
  hs.status = "Degraded"
  hs.message = prefix .. ": " .. table.concat(problems, "; ")
  return hs
end

-- Open and on time: say what the response waits for.
hs.status = "Progressing"
local details = {}
-- Ready not yet True (Unknown: still initializing) says more than the step; else the next step.
local step = ready
if ready == nil or ready.status == "True" then
  step = get_condition(status, "Acknowledged")
  if phase == "Acknowledged" or phase == "Contained" then
    step = get_condition(status, "Contained")
  end
end
if step ~= nil then
  table.insert(details, describe(step))
end
if status.sla ~= nil and status.sla.nextDeadline ~= nil then
  table.insert(details, "next deadline " .. status.sla.nextDeadline)
end
if awaiting_approval > 0 then
  table.insert(details, tostring(awaiting_approval) .. " action(s) awaiting approval")
end
hs.message = prefix
if #details > 0 then
  hs.message = prefix .. ": " .. table.concat(details, "; ")
end
return hs
