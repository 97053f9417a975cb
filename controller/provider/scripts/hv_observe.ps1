# Observe one Hyper-V host, or one VM on it when $a.vm is set.
# Each list is a cmdlet's output projected with Select-Object; berth parses
# and joins them (adapters, VLANs and ACLs by the adapter's Id).

$report = [ordered]@{
    vmHost     = $null
    processor  = $null
    switches   = @()
    vms        = @()
    adapters   = @()
    vlans      = @()
    acls       = @()
    migrations = @()
}

if ($a.vm) {
    $vmObjects = @(Get-VM @on | Where-Object { $_.Name -ceq [string]$a.vm })
} else {
    $report.vmHost = Get-VMHost @on | Select-Object -Property Name, FullyQualifiedDomainName, MemoryCapacity, MaximumVirtualMachineMigrations, VirtualMachineMigrationEnabled, LogicalProcessorCount
    $report.processor = Get-CimInstance -ClassName Win32_Processor @on | Select-Object -First 1 -Property Manufacturer, Name
    $report.switches = @(Get-VMSwitch @on | Select-Object -Property Name, @{ Name = 'Id'; Expression = { [string]$_.Id } }, SwitchType)
    $vmObjects = @(Get-VM @on)
}

$report.vms = @($vmObjects | Select-Object -Property Name, @{ Name = 'Id'; Expression = { [string]$_.Id } }, State, MemoryAssigned, MemoryStartup, DynamicMemoryEnabled, PrimaryOperationalStatus, SecondaryOperationalStatus, IsClustered)

# Piping nothing into these cmdlets is not the same as calling them with no
# VM, so each step runs only when the previous one found something.
$adapterObjects = @()
if ($vmObjects.Count -gt 0) {
    $adapterObjects = @($vmObjects | Get-VMNetworkAdapter)
}
if ($adapterObjects.Count -gt 0) {
    $report.adapters = @($adapterObjects | Select-Object -Property Name, Id, VMName, @{ Name = 'VMId'; Expression = { [string]$_.VMId } }, SwitchName, Connected, MacAddress)
    $report.vlans = @($adapterObjects | Get-VMNetworkAdapterVlan | Select-Object -Property OperationMode, AccessVlanId, @{ Name = 'AdapterId'; Expression = { $_.ParentAdapter.Id } })
    $report.acls = @($adapterObjects | Get-VMNetworkAdapterExtendedAcl | Select-Object -Property Direction, Action, LocalIPAddress, RemoteIPAddress, LocalPort, RemotePort, Protocol, Weight, Stateful, IdleSessionTimeout, IsolationID, @{ Name = 'AdapterId'; Expression = { $_.ParentAdapter.Id } })
}

# Live migrations the host's migration service is running: which VM (by Id)
# goes where. Optional: older hosts or restricted accounts may refuse it.
try {
    $report.migrations = @(Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_MigrationJob @on | Select-Object -Property InstanceID, JobState, VirtualSystemName, DestinationHost, MigrationType, PercentComplete, ErrorCode, ErrorDescription)
} catch {
    $report.migrations = @()
}

ConvertTo-BerthJson $report
