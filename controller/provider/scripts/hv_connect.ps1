# Connect one adapter to a virtual switch, both chosen by exact name.

$vm = Get-BerthVm -Name ([string]$a.vm)
$adapter = Get-BerthAdapter -Vm $vm -Name ([string]$a.adapter)
$switch = Get-BerthSwitch -Name ([string]$a.switch)
Connect-VMNetworkAdapter -VMNetworkAdapter $adapter -VMSwitch $switch
ConvertTo-BerthJson ([ordered]@{ connected = $switch.Name })
