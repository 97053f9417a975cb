# Observe the fleet as VMM knows it: hosts, VMs and their adapters; with
# $a.vm, only that VM (and no hosts).
# VMM's enumerations are written as their names ([string]) because their
# numeric values are not documented. This script needs Windows PowerShell
# 5.1: the VirtualMachineManager module does not load in PowerShell 7.

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
        LiveStorageMigrationMaximum = $h.LiveStorageMigrationMaximum
        HostCluster           = [string]$h.HostCluster.Name
        VMPaths               = @($h.VMPaths | ForEach-Object { [string]$_ })
        DiskVolumes           = @(foreach ($v in @($h.DiskVolumes)) {
            [pscustomobject]@{
                Name                    = [string]$v.Name
                FreeSpace               = $v.FreeSpace
                Capacity                = $v.Capacity
                IsClusterSharedVolume   = $v.IsClusterSharedVolume
                IsAvailableForPlacement = $v.IsAvailableForPlacement
            }
        })
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
            Name           = [string]$na.Name
            DeviceID       = [string]$na.DeviceID
            MACAddress     = [string]$na.MACAddress
            SlotId         = $na.SlotId
            VirtualNetwork = [string]$na.VirtualNetwork
            VMNetwork      = $vmNetwork
            VLanEnabled    = $na.VLanEnabled
            VLanID         = $na.VLanID
        }
    })
    $disks = @(foreach ($d in @(Get-SCVirtualHardDisk -VM $vm)) {
        [pscustomobject]@{
            Location    = [string]$d.Location
            Size        = $d.Size
            MaximumSize = $d.MaximumSize
            VHDType     = [string]$d.VHDType
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
        HostCluster          = [string]$vm.VMHost.HostCluster.Name
        MostRecentTaskId     = [string]$task.ID
        MostRecentTaskName   = [string]$task.Name
        MostRecentTaskStatus = [string]$task.Status
        Adapters             = $adapters
        VirtualHardDisks     = $disks
    }
})

ConvertTo-BerthJson ([ordered]@{ hosts = $hosts; vms = $vms })
