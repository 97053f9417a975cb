# Observe the fleet as VMM knows it: hosts, VMs and their adapters; with
# $a.vm, only that VM (and no hosts).
# VMM's enumerations are written as their names ([string]) because their
# numeric values are not documented.

$server = Connect-BerthVmm

$hostObjects = @()
$vmObjects = @()
if ($a.vm) {
    $vmObjects = @(Get-SCVirtualMachine -VMMServer $server | Where-Object { $_.Name -ceq [string]$a.vm })
} else {
    $hostObjects = @(Get-SCVMHost -VMMServer $server)
    $vmObjects = @(Get-SCVirtualMachine -VMMServer $server)
}

$hosts = @(foreach ($h in $hostObjects) {
    [pscustomobject]@{
        Name                  = [string]$h.Name
        ComputerName          = [string]$h.ComputerName
        TotalMemory           = $h.TotalMemory
        AvailableMemory       = $h.AvailableMemory
        LiveMigrationMaximum  = $h.LiveMigrationMaximum
        ProcessorManufacturer = [string]$h.ProcessorManufacturer
        OverallState          = [string]$h.OverallState
        CommunicationState    = [string]$h.CommunicationState
        VirtualSwitches       = @(Get-SCVirtualNetwork -VMHost $h | ForEach-Object { [string]$_.Name })
    }
})

$vms = @(foreach ($vm in $vmObjects) {
    $adapters = @(foreach ($na in @(Get-SCVirtualNetworkAdapter -VM $vm)) {
        $vmNetwork = $null
        if ($null -ne $na.VMNetwork) {
            $vmNetwork = [string]$na.VMNetwork.Name
        }
        [pscustomobject]@{
            ID             = [string]$na.ID
            MACAddress     = [string]$na.MACAddress
            SlotId         = $na.SlotId
            VirtualNetwork = [string]$na.VirtualNetwork
            VMNetwork      = $vmNetwork
            VLanEnabled    = $na.VLanEnabled
            VLanID         = $na.VLanID
        }
    })
    $task = $vm.MostRecentTask
    [pscustomobject]@{
        Name                 = [string]$vm.Name
        ID                   = [string]$vm.ID
        VMId                 = [string]$vm.VMId
        HostName             = [string]$vm.VMHost.Name
        Status               = [string]$vm.Status
        VirtualMachineState  = [string]$vm.VirtualMachineState
        Memory               = $vm.Memory
        MemoryAssignedMB     = $vm.MemoryAssignedMB
        DynamicMemoryEnabled = $vm.DynamicMemoryEnabled
        IsHighlyAvailable    = $vm.IsHighlyAvailable
        MostRecentTaskId     = [string]$task.ID
        MostRecentTaskName   = [string]$task.Name
        MostRecentTaskStatus = [string]$task.Status
        Adapters             = $adapters
    }
})

ConvertTo-BerthJson ([ordered]@{ hosts = $hosts; vms = $vms })
