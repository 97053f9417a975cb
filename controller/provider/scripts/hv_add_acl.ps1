# Add one extended port ACL rule to one adapter, chosen by its exact name.
# Every field is passed; an address, port or protocol of ANY arrives as null
# and its parameter is left out, which is how Hyper-V spells "any". The
# protocol is TCP, UDP or an IP protocol number (1 for ICMP, 58 for ICMPv6),
# the values -Protocol accepts. An idle timeout arrives only when the spec
# declares one; otherwise it is left out and Hyper-V applies its default.

$vm = Get-BerthVm -Name ([string]$a.vm)
$adapter = Get-BerthAdapter -Vm $vm -Name ([string]$a.adapter)
$rule = $a.acl
$add = @{
    VMNetworkAdapter   = $adapter
    Action             = [string]$rule.action
    Direction          = [string]$rule.direction
    Weight             = [int]$rule.weight
    Stateful           = [bool]$rule.stateful
    IsolationID        = [int]$rule.isolationId
}
if ($null -ne $rule.idleSessionTimeout) {
    $add['IdleSessionTimeout'] = [int]$rule.idleSessionTimeout
}
if ($null -ne $rule.localIPAddress) {
    $add['LocalIPAddress'] = [string]$rule.localIPAddress
}
if ($null -ne $rule.remoteIPAddress) {
    $add['RemoteIPAddress'] = [string]$rule.remoteIPAddress
}
if ($null -ne $rule.localPort) {
    $add['LocalPort'] = [string]$rule.localPort
}
if ($null -ne $rule.remotePort) {
    $add['RemotePort'] = [string]$rule.remotePort
}
if ($null -ne $rule.protocol) {
    $add['Protocol'] = [string]$rule.protocol
}
Add-VMNetworkAdapterExtendedAcl @add
ConvertTo-BerthJson ([ordered]@{ added = 1 })
