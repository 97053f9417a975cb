# The head of every berth script: berth prepends this file to each script at
# build time, so every script it sends is this text followed by one script.
#
# $a        the request's arguments, parsed from JSON by the host: values
#           only ever arrive here and are passed on as parameters.
# $computer the host to address with -ComputerName, or '' when the script
#           already runs on that host (WinRM and SSH transports).
param($a, $computer)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'

$on = @{}
if ($computer) {
    $on['ComputerName'] = [string]$computer
}

function Stop-Berth {
    param([string]$Message, [string]$Category, [string]$Id)
    $exception = New-Object -TypeName System.InvalidOperationException -ArgumentList $Message
    $kind = [System.Management.Automation.ErrorCategory]$Category
    $record = New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $exception, $Id, $kind, $null
    throw $record
}

function ConvertTo-BerthJson {
    param($Value)
    ConvertTo-Json -InputObject $Value -Depth 6 -Compress
}

# Names are compared literally (-ceq), never as wildcard patterns.
function Get-BerthVm {
    param([string]$Name)
    $found = @(Get-VM @on | Where-Object { $_.Name -ceq $Name })
    if ($found.Count -eq 0) {
        Stop-Berth -Message ('no VM named "' + $Name + '" on this host') -Category 'ObjectNotFound' -Id 'BerthVmNotFound'
    }
    if ($found.Count -gt 1) {
        Stop-Berth -Message ('more than one VM is named "' + $Name + '" on this host') -Category 'InvalidArgument' -Id 'BerthVmAmbiguous'
    }
    $found[0]
}

function Get-BerthAdapter {
    param($Vm, [string]$Name)
    $found = @(Get-VMNetworkAdapter -VM $Vm | Where-Object { $_.Name -ceq $Name })
    if ($found.Count -eq 0) {
        Stop-Berth -Message ('VM "' + $Vm.Name + '" has no network adapter named "' + $Name + '"') -Category 'ObjectNotFound' -Id 'BerthAdapterNotFound'
    }
    if ($found.Count -gt 1) {
        Stop-Berth -Message ('VM "' + $Vm.Name + '" has more than one network adapter named "' + $Name + '"') -Category 'InvalidArgument' -Id 'BerthAdapterAmbiguous'
    }
    $found[0]
}

function Get-BerthSwitch {
    param([string]$Name)
    $found = @(Get-VMSwitch @on | Where-Object { $_.Name -ceq $Name })
    if ($found.Count -eq 0) {
        Stop-Berth -Message ('no virtual switch named "' + $Name + '" on this host') -Category 'ObjectNotFound' -Id 'BerthSwitchNotFound'
    }
    $found[0]
}

function Connect-BerthVmm {
    Get-SCVMMServer -ComputerName ([string]$a.server)
}

function Get-BerthScVm {
    param($Server, [string]$Name)
    $found = @(Get-SCVirtualMachine -VMMServer $Server | Where-Object { $_.Name -ceq $Name })
    if ($found.Count -eq 0) {
        Stop-Berth -Message ('VMM knows no VM named "' + $Name + '"') -Category 'ObjectNotFound' -Id 'BerthVmNotFound'
    }
    if ($found.Count -gt 1) {
        Stop-Berth -Message ('VMM knows more than one VM named "' + $Name + '"') -Category 'InvalidArgument' -Id 'BerthVmAmbiguous'
    }
    $found[0]
}

function Get-BerthScHost {
    param($Server, [string]$Name)
    $found = @(Get-SCVMHost -VMMServer $Server | Where-Object { $_.Name -eq $Name -or $_.ComputerName -eq $Name })
    if ($found.Count -eq 0) {
        Stop-Berth -Message ('VMM knows no host named "' + $Name + '"') -Category 'ObjectNotFound' -Id 'BerthHostNotFound'
    }
    $found[0]
}

