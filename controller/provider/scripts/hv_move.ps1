# Start moving one VM from this host to $a.to and return at once.
# A clustered VM moves as a cluster role (Move-ClusterVirtualMachineRole,
# which returns at once with -Wait 0); any other VM moves with Move-VM -AsJob,
# a job berth follows with hv_job in this same session.

$vm = Get-BerthVm -Name ([string]$a.vm)

if ($vm.IsClustered) {
    $move = @{
        VMId          = $vm.Id
        Node          = [string]$a.to
        MigrationType = [string]$a.clusterMigrationType
        Wait          = 0
    }
    if ($computer) {
        $move['Cluster'] = [string]$computer
    }
    $null = Move-ClusterVirtualMachineRole @move
    ConvertTo-BerthJson ([ordered]@{ kind = 'cluster'; jobId = $null })
} else {
    $move = @{
        VM              = $vm
        DestinationHost = [string]$a.to
        AsJob           = $true
    }
    if ($a.includeStorage) {
        $move['IncludeStorage'] = $true
        $move['DestinationStoragePath'] = [string]$a.storagePath
    }
    $job = Move-VM @move
    ConvertTo-BerthJson ([ordered]@{ kind = 'job'; jobId = $job.Id })
}
