-- wrk script: every request comes from one of 10,000 client addresses (via
-- the trusted x-forwarded-for header), so the rate limiter works on 10,000
-- distinct keys instead of one hot key.
local counter = 0
request = function()
  counter = counter + 1
  local n = counter % 10000
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("GET", nil, { ["x-forwarded-for"] = ip })
end
