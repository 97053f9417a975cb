# Observe one Hyper-V host, or one VM on it when $a.vm is set.
# Each list is a cmdlet's output projected with Select-Object; berth parses
# and joins them (adapters, VLANs and ACLs by the adapter's Id, disks by the
# VM's Id). ConvertTo-Json writes enumerations as numbers in Windows
# PowerShell 5.1 and in PowerShell 7 alike; where a number's meaning depends
# on the Windows version (VMState), the name is sent too.

$report = [ordered]@{
    vmHost     = $null
    processor  = $null
    os         = $null
    cluster    = $null
    paths      = $null
    switches   = @()
    vms        = @()
    adapters   = @()
    vlans      = @()
    acls       = @()
    disks      = @()
    volumes    = @()
    groups     = @()
    migrations = @()
}

# The Windows build: VMState numbering changed after Windows Server 2012 R2.
try {
    $report.os = Get-CimInstance -ClassName Win32_OperatingSystem @on | Select-Object -First 1 -Property Version, BuildNumber
} catch {
    $report.os = $null
}

# The host's default folders for VM files, and its local volumes
# (DriveType 3) with their free space: berth keeps the volumes under those
# folders and those holding a VM's disks. Both are asked for one VM too, so
# a disk names the same volume either way.
$hostObject = Get-VMHost @on
$report.paths = $hostObject | Select-Object -Property VirtualMachinePath, VirtualHardDiskPath
try {
    $report.volumes = @(Get-CimInstance -ClassName Win32_Volume @on | Where-Object { $_.DriveType -eq 3 -and $_.Name } | Select-Object -Property Name, Label, FileSystem, FreeSpace, Capacity)
} catch {
    $report.volumes = @()
}

if ($a.vm) {
    $vmObjects = @(Get-VM @on | Where-Object { $_.Name -ceq [string]$a.vm })
} else {
    $report.vmHost = $hostObject | Select-Object -Property Name, FullyQualifiedDomainName, MemoryCapacity, MaximumVirtualMachineMigrations, MaximumStorageMigrations, VirtualMachineMigrationEnabled, LogicalProcessorCount
    $report.processor = Get-CimInstance -ClassName Win32_Processor @on | Select-Object -First 1 -Property Manufacturer, Name
    $report.switches = @(Get-VMSwitch @on | Select-Object -Property Name, @{ Name = 'Id'; Expression = { [string]$_.Id } }, SwitchType)
    $vmObjects = @(Get-VM @on)
}

# The failover cluster this host is a node of; a standalone host has no
# root\MSCluster namespace and answers with an error.
try {
    $report.cluster = Get-CimInstance -Namespace 'root\MSCluster' -ClassName MSCluster_Cluster @on -ErrorAction Stop | Select-Object -First 1 -Property Name
} catch {
    $report.cluster = $null
}

$report.vms = @($vmObjects | Select-Object -Property Name, @{ Name = 'Id'; Expression = { [string]$_.Id } }, State, @{ Name = 'StateName'; Expression = { [string]$_.State } }, MemoryAssigned, MemoryStartup, DynamicMemoryEnabled, PrimaryOperationalStatus, SecondaryOperationalStatus, IsClustered)

# Piping nothing into these cmdlets is not the same as calling them with no
# VM, so each step runs only when the previous one found something.
$adapterObjects = @()
$driveObjects = @()
if ($vmObjects.Count -gt 0) {
    $adapterObjects = @($vmObjects | Get-VMNetworkAdapter)
    $driveObjects = @($vmObjects | Get-VMHardDiskDrive)
}
if ($adapterObjects.Count -gt 0) {
    $report.adapters = @($adapterObjects | Select-Object -Property Name, Id, VMName, @{ Name = 'VMId'; Expression = { [string]$_.VMId } }, SwitchName, Connected, MacAddress)
    $report.vlans = @($adapterObjects | Get-VMNetworkAdapterVlan | Select-Object -Property OperationMode, AccessVlanId, @{ Name = 'AdapterId'; Expression = { $_.ParentAdapter.Id } })
    $report.acls = @($adapterObjects | Get-VMNetworkAdapterExtendedAcl | Select-Object -Property Direction, Action, LocalIPAddress, RemoteIPAddress, LocalPort, RemotePort, Protocol, Weight, Stateful, IdleSessionTimeout, IsolationID, @{ Name = 'AdapterId'; Expression = { $_.ParentAdapter.Id } })
}

# Each virtual hard disk with its size: Get-VHD's FileSize is the space it
# takes (a dynamic disk's file), Size its capacity. Pass-through disks have
# no path and take no space on a volume.
$report.disks = @(foreach ($drive in $driveObjects) {
    $vhd = $null
    if ($drive.Path) {
        try {
            $vhd = Get-VHD -Path ([string]$drive.Path) @on
        } catch {
            $vhd = $null
        }
    }
    $vhdType = $null
    $fileSize = $null
    $size = $null
    if ($null -ne $vhd) {
        $vhdType = $vhd.VhdType
        $fileSize = $vhd.FileSize
        $size = $vhd.Size
    }
    [pscustomobject]@{
        VMId     = [string]$drive.VMId
        VMName   = [string]$drive.VMName
        Path     = [string]$drive.Path
        VhdType  = $vhdType
        FileSize = $fileSize
        Size     = $size
    }
})

# Clustered VMs: their cluster groups (state and owner node), so a move the
# cluster has queued is told apart from one that never started.
if ($null -ne $report.cluster) {
    try {
        $report.groups = @(Get-CimInstance -Namespace 'root\MSCluster' -ClassName MSCluster_ResourceGroup @on -ErrorAction Stop | Where-Object { $_.GroupType -eq 111 } | Select-Object -Property Name, State, OwnerNode)
    } catch {
        $report.groups = @()
    }
}

# Live migrations the host's migration service is running: which VM (by Id)
# goes where. Optional: older hosts or restricted accounts may refuse it.
try {
    $report.migrations = @(Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_MigrationJob @on | Select-Object -Property InstanceID, JobState, VirtualSystemName, DestinationHost, MigrationType, PercentComplete, ErrorCode, ErrorDescription)
} catch {
    $report.migrations = @()
}

ConvertTo-BerthJson $report
