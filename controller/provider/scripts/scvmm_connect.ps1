# Connect one VMM virtual network adapter (chosen by its VMM ID) to a host
# virtual switch and, when given, a VM network.

$server = Connect-BerthVmm
$vm = Get-BerthScVm -Server $server -Name ([string]$a.vm)
$adapter = @(Get-SCVirtualNetworkAdapter -VM $vm | Where-Object { [string]$_.ID -eq [string]$a.adapterId })
if ($adapter.Count -eq 0) {
    Stop-Berth -Message ('VM "' + $vm.Name + '" has no network adapter with VMM ID ' + [string]$a.adapterId) -Category 'ObjectNotFound' -Id 'BerthAdapterNotFound'
}
$set = @{
    VirtualNetworkAdapter = $adapter[0]
    VirtualNetwork        = [string]$a.switch
}
if ($a.vmNetwork) {
    $network = @(Get-SCVMNetwork -VMMServer $server | Where-Object { $_.Name -ceq [string]$a.vmNetwork })
    if ($network.Count -eq 0) {
        Stop-Berth -Message ('VMM knows no VM network named "' + [string]$a.vmNetwork + '"') -Category 'ObjectNotFound' -Id 'BerthVmNetworkNotFound'
    }
    $set['VMNetwork'] = $network[0]
}
$null = Set-SCVirtualNetworkAdapter @set
ConvertTo-BerthJson ([ordered]@{ connected = [string]$a.switch })
