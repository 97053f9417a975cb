# berth's PowerShell host: one long-lived process that runs berth's scripts.
#
# Protocol (one JSON document per line, UTF-8, "\n" line ends):
#   1. berth writes a hello: {"berth":1,"marker":"...","transport":"local",
#      "scripts":{"name":"<script text>",...},"username":...,"password":...}
#      The script texts are berth's own embedded .ps1 files, sent once.
#   2. This host answers: <marker>{"id":0,"ok":true,"result":{...}}
#   3. berth writes requests: {"id":N,"script":"name","target":"host"|null,"args":{...}}
#      and this host answers each with one line:
#        <marker>{"id":N,"ok":true,"result":<JSON>}
#        <marker>{"id":N,"ok":false,"error":{"category":..,"message":..,"fullyQualifiedErrorId":..}}
# Only lines that start with the marker are replies; anything else a cmdlet
# prints is ignored by berth. Values arrive only inside "args" and are passed
# to the scripts as one parameter: no value is ever turned into code.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$InformationPreference = 'SilentlyContinue'

$utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
$reader = New-Object -TypeName System.IO.StreamReader -ArgumentList ([Console]::OpenStandardInput()), $utf8
$writer = New-Object -TypeName System.IO.StreamWriter -ArgumentList ([Console]::OpenStandardOutput()), $utf8
$writer.NewLine = "`n"
$writer.AutoFlush = $true

function ConvertTo-BerthError {
    param($Record)
    $category = ''
    $reason = ''
    $targetName = ''
    if ($null -ne $Record.CategoryInfo) {
        $category = [string]$Record.CategoryInfo.Category
        $reason = [string]$Record.CategoryInfo.Reason
        $targetName = [string]$Record.CategoryInfo.TargetName
    }
    $exceptionType = ''
    $message = [string]$Record
    if ($null -ne $Record.Exception) {
        $exceptionType = $Record.Exception.GetType().FullName
        $message = [string]$Record.Exception.Message
    }
    [ordered]@{
        category              = $category
        message               = $message
        fullyQualifiedErrorId = [string]$Record.FullyQualifiedErrorId
        exceptionType         = $exceptionType
        reason                = $reason
        targetName            = $targetName
    }
}

function Write-BerthReply {
    param([string]$Marker, [string]$Json)
    $writer.WriteLine($Marker + $Json)
}

$helloLine = $reader.ReadLine()
if ($null -eq $helloLine) {
    exit 0
}
$hello = ConvertFrom-Json -InputObject $helloLine
$marker = [string]$hello.marker
$transport = [string]$hello.transport
$scripts = @{}
foreach ($property in $hello.scripts.PSObject.Properties) {
    $scripts[$property.Name] = [scriptblock]::Create([string]$property.Value)
}
$credential = $null
if ($hello.username) {
    $secure = ConvertTo-SecureString -String ([string]$hello.password) -AsPlainText -Force
    $credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList ([string]$hello.username), $secure
}
$hello = $null
$helloLine = $null

$sessions = @{}

function Get-BerthSession {
    param([string]$Computer)
    $existing = $sessions[$Computer]
    if ($null -ne $existing -and $existing.State -eq 'Opened') {
        return $existing
    }
    if ($null -ne $existing) {
        Remove-PSSession -Session $existing -ErrorAction SilentlyContinue
    }
    $options = @{ ErrorAction = 'Stop' }
    if ($transport -eq 'ssh') {
        $options['HostName'] = $Computer
        $options['SSHTransport'] = $true
        if ($null -ne $credential) {
            $options['UserName'] = $credential.UserName
        }
    } else {
        $options['ComputerName'] = $Computer
        $options['Authentication'] = 'Kerberos'
        if ($null -ne $credential) {
            $options['Credential'] = $credential
        }
    }
    $session = New-PSSession @options
    $sessions[$Computer] = $session
    return $session
}

$ready = [ordered]@{
    ready   = $true
    version = [string]$PSVersionTable.PSVersion
    edition = [string]$PSVersionTable.PSEdition
}
Write-BerthReply -Marker $marker -Json ('{"id":0,"ok":true,"result":' + (ConvertTo-Json -InputObject $ready -Compress) + '}')

try {
    while ($true) {
        $line = $reader.ReadLine()
        if ($null -eq $line) {
            break
        }
        if ($line.Length -eq 0) {
            continue
        }
        $id = $null
        try {
            $request = ConvertFrom-Json -InputObject $line
            $id = [long]$request.id
            $name = [string]$request.script
            if (-not $scripts.ContainsKey($name)) {
                $exception = New-Object -TypeName System.ArgumentException -ArgumentList ('berth has no script named ' + $name)
                $record = New-Object -TypeName System.Management.Automation.ErrorRecord -ArgumentList $exception, 'BerthUnknownScript', ([System.Management.Automation.ErrorCategory]::InvalidArgument), $name
                throw $record
            }
            $block = $scripts[$name]
            $target = [string]$request.target
            if ($transport -eq 'local' -or $target.Length -eq 0) {
                $output = @(& $block $request.args $target)
            } else {
                $session = Get-BerthSession -Computer $target
                $output = @(Invoke-Command -Session $session -ScriptBlock $block -ArgumentList $request.args, '' -ErrorAction Stop)
            }
            $json = 'null'
            if ($output.Count -gt 0 -and $null -ne $output[-1]) {
                $json = [string]$output[-1]
            }
            if ($json.Length -eq 0) {
                $json = 'null'
            }
            Write-BerthReply -Marker $marker -Json ('{"id":' + $id + ',"ok":true,"result":' + $json + '}')
        } catch {
            $body = [ordered]@{
                id    = $id
                ok    = $false
                error = (ConvertTo-BerthError -Record $_)
            }
            Write-BerthReply -Marker $marker -Json (ConvertTo-Json -InputObject $body -Compress -Depth 4)
        }
    }
} finally {
    foreach ($session in $sessions.Values) {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
    }
}
