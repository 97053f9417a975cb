# Set the access VLAN of one VMM virtual network adapter (chosen by VMM ID).

$server = Connect-BerthVmm
$vm = Get-BerthScVm -Server $server -Name ([string]$a.vm)
$adapter = @(Get-SCVirtualNetworkAdapter -VM $vm | Where-Object { [string]$_.ID -eq [string]$a.adapterId })
if ($adapter.Count -eq 0) {
    Stop-Berth -Message ('VM "' + $vm.Name + '" has no network adapter with VMM ID ' + [string]$a.adapterId) -Category 'ObjectNotFound' -Id 'BerthAdapterNotFound'
}
$null = Set-SCVirtualNetworkAdapter -VirtualNetworkAdapter $adapter[0] -VLanEnabled $true -VLanID ([int]$a.vlanId)
ConvertTo-BerthJson ([ordered]@{ vlanId = [int]$a.vlanId })
