# Report on a Move-VM job started by hv_move in this session: running,
# completed, failed (with the error record) or missing.
#
# A Move-VM job can end in state Completed although the move failed: the
# errors are then in the job's Error stream (its own and its child jobs').
# Such a job is reported failed with its first error record.

function ConvertTo-BerthError {
    param($Record)
    [ordered]@{
        category              = [string]$Record.CategoryInfo.Category
        message               = [string]$Record.Exception.Message
        fullyQualifiedErrorId = [string]$Record.FullyQualifiedErrorId
    }
}

$status = [ordered]@{ state = 'missing'; jobState = $null; error = $null; errors = 0 }
$job = Get-Job -Id ([int]$a.jobId) -ErrorAction SilentlyContinue
if ($null -ne $job) {
    $state = [string]$job.State
    $status.jobState = $state
    if ($state -eq 'Completed' -or $state -eq 'Failed' -or $state -eq 'Stopped') {
        $records = @()
        foreach ($j in @(@($job) + @($job.ChildJobs))) {
            if ($null -ne $j -and $null -ne $j.Error) {
                $records += @($j.Error)
            }
        }
        $received = @()
        try {
            $null = Receive-Job -Job $job -ErrorAction SilentlyContinue -ErrorVariable received
        } catch {
            $received = @($_)
        }
        $records += @($received)
        $records = @($records | Where-Object { $null -ne $_ })
        $status.errors = $records.Count
        if ($records.Count -gt 0) {
            $status.state = 'failed'
            $status.error = ConvertTo-BerthError -Record $records[0]
        } elseif ($state -eq 'Completed') {
            $status.state = 'completed'
        } else {
            $status.state = 'failed'
            $status.error = [ordered]@{
                category              = 'OperationStopped'
                message               = ('the move job ended in state ' + $state)
                fullyQualifiedErrorId = ('BerthJob' + $state)
            }
        }
        Remove-Job -Job $job -Force
    } else {
        $status.state = 'running'
    }
}
ConvertTo-BerthJson $status
