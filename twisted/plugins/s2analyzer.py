from twisted.application.service import ServiceMaker

s2analyzer = ServiceMaker("s2analyzer", "s2proxy.tap", "S2 analysing proxy between Resource Managers and CEMs", "s2analyzer")
