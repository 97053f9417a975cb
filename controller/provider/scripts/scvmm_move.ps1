# Start moving one VM to another host through VMM and return the VMM job's
# ID at once (-RunAsynchronously); berth follows it with scvmm_job. A VM
# left in MigrationFailed by an earlier attempt is repaired first
# (Repair-SCVirtualMachine -Dismiss), or VMM refuses to move it.

$server = Connect-BerthVmm
$vm = Get-BerthScVm -Server $server -Name ([string]$a.vm)
$destination = Get-BerthScHost -Server $server -Name ([string]$a.to)
$dismissed = $false
if ([string]$vm.Status -eq 'MigrationFailed') {
    $null = Repair-SCVirtualMachine -VM $vm -Dismiss -Force
    $dismissed = $true
    $vm = Get-BerthScVm -Server $server -Name ([string]$a.vm)
}
$move = @{
    VM                = $vm
    VMHost            = $destination
    RunAsynchronously = $true
    JobVariable       = 'berthMoveJob'
}
if ($a.path) {
    $move['Path'] = [string]$a.path
}
$null = Move-SCVirtualMachine @move
ConvertTo-BerthJson ([ordered]@{ jobId = [string]$berthMoveJob.ID; dismissed = $dismissed })
