# Put one adapter in access mode on a VLAN.

$vm = Get-BerthVm -Name ([string]$a.vm)
$adapter = Get-BerthAdapter -Vm $vm -Name ([string]$a.adapter)
Set-VMNetworkAdapterVlan -VMNetworkAdapter $adapter -Access -VlanId ([int]$a.vlanId)
ConvertTo-BerthJson ([ordered]@{ vlanId = [int]$a.vlanId })
