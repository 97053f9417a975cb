# Remove the extended ACL rule with this direction and weight from one
# adapter; nothing to remove is success (the call is idempotent).

$vm = Get-BerthVm -Name ([string]$a.vm)
$adapter = Get-BerthAdapter -Vm $vm -Name ([string]$a.adapter)
$weight = [int]$a.weight
$direction = [string]$a.direction
$existing = @(Get-VMNetworkAdapterExtendedAcl -VMNetworkAdapter $adapter | Where-Object { $_.Weight -eq $weight -and [string]$_.Direction -eq $direction })
if ($existing.Count -gt 0) {
    Remove-VMNetworkAdapterExtendedAcl -VMNetworkAdapter $adapter -Direction $direction -Weight $weight
}
ConvertTo-BerthJson ([ordered]@{ removed = $existing.Count })
