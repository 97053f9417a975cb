# Report on a VMM job. When the job failed and left the VM in
# MigrationFailed, dismiss that state so the next attempt can start.

$server = Connect-BerthVmm
$job = Get-SCJob -VMMServer $server -ID ([guid][string]$a.jobId)
$report = [ordered]@{
    status            = 'Missing'
    progress          = $null
    errorCode         = $null
    problem           = $null
    recommendedAction = $null
    dismissed         = $false
}
if ($null -ne $job) {
    $report.status = [string]$job.Status
    $report.progress = [string]$job.Progress
    if ($null -ne $job.ErrorInfo) {
        $report.errorCode = [string]$job.ErrorInfo.DisplayableErrorCode
        $report.problem = [string]$job.ErrorInfo.Problem
        $report.recommendedAction = [string]$job.ErrorInfo.RecommendedAction
    }
    if (($report.status -eq 'Failed' -or $report.status -eq 'Canceled') -and $a.vm) {
        $vm = @(Get-SCVirtualMachine -VMMServer $server | Where-Object { $_.Name -ceq [string]$a.vm })
        if ($vm.Count -eq 1 -and [string]$vm[0].Status -eq 'MigrationFailed') {
            $null = Repair-SCVirtualMachine -VM $vm[0] -Dismiss -Force
            $report.dismissed = $true
        }
    }
}
ConvertTo-BerthJson $report
