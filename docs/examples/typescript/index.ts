// index.ts of a team's TypeScript Pulumi program, after
//   pulumi package add <path or git URL of this repository>/provider
// which generates the SDK of the protected-vm package (its schema: `python -m components.package`).
// Settings are the stack file's own mappings (protected-vm:vault, protected-vm:policy,
// protected-vm:initialBackup, a vms entry's disks), validated at preview with the same messages.
// tests/test_package_schema.py checks every property used here against the generated schema.
import * as protectedVm from "@pulumi/protected-vm";

const sub = "6b0c1c5e-0f2a-4d8e-9a57-2f3c4d5e6f70";

// A VM with its own vault and policy: the component also proves its first backup.
const app = new protectedVm.ProtectedVM("app-01", {
    vmId: `/subscriptions/${sub}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-01`,
    vault: { name: "rsv-app", resourceGroup: "rg-app-backup", location: "westeurope", softDeleteRetentionDays: 30 },
    policy: { name: "daily-30", timeZone: "W. Europe Standard Time", retention: { daily: 30 } },
    initialBackup: { verify: "completed", timeoutMinutes: 90 },
});

// VMs sharing one vault join it by its ids; the OS disk and LUN 0 only for the database VM.
const shared = new protectedVm.BackupVault("backup", {
    vault: { name: "rsv-shared", resourceGroup: "rg-backup", location: "westeurope", alerts: { jobFailureAlerts: true } },
    policy: {
        name: "weekly-12",
        type: "Enhanced",
        schedule: { frequency: "Weekly", weekdays: ["Sunday"], time: "22:30" },
        retention: { weekly: { count: 12, days: ["Sunday"] }, monthly: { count: 6, weeksOfMonth: ["First"], days: ["Sunday"] } },
    },
    tags: { team: "web" },
});
const web01 = new protectedVm.ProtectedVM("web-01", {
    vmId: `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01`,
    vaultId: shared.vaultId,
    policyId: shared.policyId,
});
const db01 = new protectedVm.ProtectedVM("db-01", {
    vmId: `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/db-01`,
    vaultId: shared.vaultId,
    policyId: shared.policyId,
    disks: { include: [0] },
    onRemove: "retainData",
});

// The shared vault proves its VMs' first backups together, once their items exist.
const sharedProof = new protectedVm.VaultInitialBackup("initial-backup", {
    vaultId: shared.vaultId,
    vmIds: [
        `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01`,
        `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/db-01`,
    ],
    protectedItemIds: [web01.protectedItemId, db01.protectedItemId],
    initialBackup: { verify: "completed", pollSeconds: 60 },
});

export const appItemId = app.protectedItemId;
export const appProof = app.initialBackups;
export const sharedVault = shared.vaultName;
export const webItems = [web01.protectedItemName, db01.protectedItemName];
export const sharedProofs = sharedProof.initialBackups;
