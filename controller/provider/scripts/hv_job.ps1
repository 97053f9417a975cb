# Report on a Move-VM job started by hv_move in this session: running,
# completed, failed (with the error record) or missing.

$status = [ordered]@{ state = 'missing'; error = $null }
$job = Get-Job -Id ([int]$a.jobId) -ErrorAction SilentlyContinue
if ($null -ne $job) {
    $state = [string]$job.State
    if ($state -eq 'Completed') {
        $null = Receive-Job -Job $job -ErrorAction SilentlyContinue
        Remove-Job -Job $job -Force
        $status.state = 'completed'
    } elseif ($state -eq 'Failed' -or $state -eq 'Stopped') {
        $status.state = 'failed'
        $status.error = [ordered]@{
            category              = 'OperationStopped'
            message               = ('the move job ended in state ' + $state)
            fullyQualifiedErrorId = ('BerthJob' + $state)
        }
        try {
            $null = Receive-Job -Job $job -ErrorAction Stop
        } catch {
            $status.error = [ordered]@{
                category              = [string]$_.CategoryInfo.Category
                message               = [string]$_.Exception.Message
                fullyQualifiedErrorId = [string]$_.FullyQualifiedErrorId
            }
        }
        Remove-Job -Job $job -Force
    } else {
        $status.state = 'running'
    }
}
ConvertTo-BerthJson $status
