# Add one extended port ACL rule to one adapter, chosen by its exact name.
# Every field is passed; an address, port or protocol of ANY arrives as null
# and its parameter is left out, which is how Hyper-V spells "any".

$vm = Get-BerthVm -Name ([string]$a.vm)
$adapter = Get-BerthAdapter -Vm $vm -Name ([string]$a.adapter)
$rule = $a.acl
$add = @{
    VMNetworkAdapter   = $adapter
    Action             = [string]$rule.action
    Direction          = [string]$rule.direction
    Weight             = [int]$rule.weight
    Stateful           = [bool]$rule.stateful
    IdleSessionTimeout = [int]$rule.idleSessionTimeout
    IsolationID        = [int]$rule.isolationId
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
