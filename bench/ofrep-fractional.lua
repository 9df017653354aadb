-- wrk script: OFREP evaluations of the fractional (A/B) flag `banner`, each
-- for one of 10,000 targeting keys.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"context":{"targetingKey":"user-%d"}}', counter % 10000)
  return wrk.format("POST", "/ofrep/v1/evaluate/flags/banner", { ["content-type"] = "application/json" }, body)
end
